#!/bin/bash
# mmdebstrap's customize hook for the lab's box (run by vagrant/box/build.sh, with
# /proc, /sys and /dev mounted in the tree): turn a Debian 12 tree into a Vagrant
# machine.
#
#   customize.sh ROOT PUBKEY
#
#   ROOT    the tree mmdebstrap made
#   PUBKEY  the public half of the key pair build.sh generated for user vagrant
#
# What a Vagrant box needs: a `vagrant` user that logs in with that key and runs
# sudo without a password, sshd, DHCP on the first interface (eth0: the kernel
# command line has net.ifnames=0, so the names follow the NICs' order and Vagrant's
# private networks become eth1..), no SSH host keys and no machine-id of its own
# (made at each VM's first boot, so no two VMs share them).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "customize.sh: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: customize.sh ROOT PUBKEY"
root=$1 pubkey=$2
[ -d "$root/etc" ] || die "$root is not a tree"
[ -s "$pubkey" ] || die "$pubkey is empty or missing"

# ---- the kernel's initramfs: only what booting from a virtio disk needs
# (MODULES=most, the default, makes it several times larger and slower to load
# under emulation).
echo 'MODULES=list' >"$root/etc/initramfs-tools/conf.d/ajs3-box.conf"
cat >>"$root/etc/initramfs-tools/modules" <<'EOF'
# ajs3 box: a virtio disk holding an ext4 root
virtio_pci
virtio_blk
ext4
crc32c_generic
EOF
chroot "$root" update-initramfs -u -k all

# ---- the root file system is the whole of the first disk (no partition table)
cat >"$root/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,errors=remount-ro 0 1
EOF
echo bookworm >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 bookworm
::1 localhost ip6-localhost ip6-loopback
EOF

# ---- network: DHCP on eth0 (Vagrant's management network) only; Vagrant writes
# 50-vagrant-ethN.network for the private networks. The client identifier is the
# MAC address, so libvirt's DHCP leases (where vagrant-libvirt looks for the VM's
# address) are keyed as it expects.
cat >"$root/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
EOF
chroot "$root" systemctl enable systemd-networkd.service
# Nothing in the box waits for "online"; apt's timers would only try a mirror the
# VMs cannot reach (their networks never leave the host's namespace).
chroot "$root" systemctl disable systemd-networkd-wait-online.service \
    apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

# ---- ssh: an ed25519 host key made at the first boot (the box ships none)
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/ssh/sshd_config.d/ajs3-box.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
EOF
cat >"$root/etc/systemd/system/ajs3-ssh-hostkey.service" <<'EOF'
[Unit]
Description=Make this machine's SSH host key (the box ships none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
RequiredBy=ssh.service
EOF
chroot "$root" systemctl enable ajs3-ssh-hostkey.service ssh.service

# ---- one box for every VM: the cluster's, the storage's and iSCSI's services are
# installed (the VMs reach no mirror) but none starts at boot; each VM's
# provisioning enables what it runs (vm-cluster.sh, sbd.sh, iscsi-*.sh). pcsd is
# never needed: the lab's pcs commands work on the local CIB and corosync.conf.
for unit in corosync.service pacemaker.service pcsd.service pcsd-ruby.service sbd.service \
    iscsid.service iscsid.socket open-iscsi.service rtslib-fb-targetctl.service \
    crm_mon.service; do
    if [ -n "$(chroot "$root" systemctl list-unit-files --no-legend "$unit" 2>/dev/null)" ]; then
        chroot "$root" systemctl disable "$unit" >/dev/null 2>&1
    fi
done

# ---- the vagrant user: the build's key, sudo without a password, no password
chroot "$root" useradd --create-home --shell /bin/bash --user-group vagrant
chroot "$root" passwd --lock vagrant >/dev/null
chroot "$root" passwd --lock root >/dev/null
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
chroot "$root" visudo -c -q -f /etc/sudoers.d/vagrant

echo "customize.sh: $root is a Vagrant machine"
