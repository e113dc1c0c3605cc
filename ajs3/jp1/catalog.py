"""What JP1/AJS3 itself accepts: unit types and the forms of enumerated parameters.

A value outside these sets is input ``ajsdefine`` would refuse, so the importer reports
it as invalid (AJS3-E111); a value inside them that ajs3 can not express is reported
as not mapped (AJS3-E112). Sources: JP1/AJS3 Command Reference, 5.2.1 "Attribute
definition" (``ty``), 5.2.3 "Job group definition" (``op``, ``cl``, ``sdd``, ``md``,
``stt``), 5.2.4 "Jobnet definition" (``sd``, ``st``, ``cy``, ``sh``, ``mp``, ``ha``),
5.2.6 "UNIX/PC job definition" (``jd``, ``abr``, ``ha``).
"""

from __future__ import annotations

import re

#: Every unit type of a unit definition file (``ty=``), as in JP1/AJS3 version 12/13;
#: ``r``-prefixed types are the recovery variants.
UNIT_TYPES = frozenset(
    {
        "g",  # job group (and planning group, gty=p)
        "mg",  # manager job group
        "n",  # jobnet
        "rn",  # recovery jobnet
        "rm",  # remote jobnet
        "rr",  # recovery remote jobnet
        "rc",  # start condition (.CONDITION)
        "mn",  # manager jobnet
        "nc",  # jobnet connector
        "j",  # Unix job
        "rj",
        "pj",  # PC job
        "rp",
        "qj",  # QUEUE job
        "rq",
        "jdj",  # judgment job
        "rjdj",
        "orj",  # OR job
        "rorj",
        "evwj",  # JP1 event reception monitoring
        "revwj",
        "flwj",  # file monitoring
        "rflwj",
        "mlwj",  # email reception monitoring
        "rmlwj",
        "mqwj",  # message-queue reception monitoring
        "rmqwj",
        "mswj",  # MSMQ reception monitoring
        "rmswj",
        "lfwj",  # log file monitoring
        "rlfwj",
        "ntwj",  # Windows event-log monitoring
        "rntwj",
        "tmwj",  # execution-interval control
        "rtmwj",
        "evsj",  # JP1 event sending
        "revsj",
        "mlsj",  # email sending
        "rmlsj",
        "mqsj",  # message-queue sending
        "rmqsj",
        "mssj",  # MSMQ sending
        "rmssj",
        "cmsj",  # OpenView status report
        "rcmsj",
        "pwlj",  # local power control
        "rpwlj",
        "pwrj",  # remote power control
        "rpwrj",
        "cj",  # custom Unix job
        "rcj",
        "cpj",  # custom PC job
        "rcpj",
        "fxj",  # flexible job
        "rfxj",
        "htpj",  # HTTP connection job
        "rhtpj",
    }
)

#: ``sh=`` (closed-day handling): before, after, cancel, execute.
SHIFT_VALUES = frozenset({"be", "af", "ca", "no"})
#: ``mp=`` (multiple schedules in parallel): yes, no.
PARALLEL_VALUES = frozenset({"y", "n"})
#: ``ha=`` of a jobnet (hold): yes, if the previous run ended abnormally, if it ended
#: with a warning or abnormally, no. A job takes y or n.
HOLD_VALUES = frozenset({"y", "w", "a", "n"})
#: ``ha=`` of a job, ``abr=`` (automatic retry), ...
YES_NO = frozenset({"y", "n"})
#: ``jd=`` (end judgment of a job, 5.2.6): always normal, always abnormal, by return
#: code, by a file being modified, by a file existing.
END_JUDGMENTS = frozenset({"nm", "ab", "cod", "mdf", "exf"})
#: ``md=`` (base month): the month the base day is in, or the next one.
BASE_MONTH_VALUES = frozenset({"th", "ne"})

_WEEKDAY = r"(?:su|mo|tu|we|th|fr|sa)"
#: Every form of ``sd=`` after the rule number: ``en`` (registration day), ``ud``
#: (undefined), or ``[[yyyy/]mm/]`` then a day: ``dd``, ``+dd`` (days from the base
#: day), ``*dd`` (open days), ``@dd`` (closed days), ``b``/``b-dd`` (from the end of
#: the month, also with + * @), or a weekday ``su[:n|:b]`` (also with +).
SD_FORM = re.compile(
    rf"en|ud|(?:(?:[0-9]{{4}}/)?[0-9]{{1,2}}/)?"
    rf"(?:[+*@]?[0-9]{{1,2}}|[+*@]?b(?:-[0-9]{{1,2}})?|\+?{_WEEKDAY}(?::(?:[1-5]|b))?)"
)
#: ``cy=(n,{y|m|w|d})``: the processing cycle.
CY_FORM = re.compile(r"\(([^,()]*),([ymwd])\)")
#: ``st=[+]hh:mm``.
ST_FORM = re.compile(r"\+?[0-9]{1,2}:[0-9]{2}")
#: ``sdd=dd`` or ``sdd=su:n`` (the base day: a day of the month or the nth weekday).
SDD_FORM = re.compile(rf"([0-9]{{1,2}})|({_WEEKDAY}):([1-5])")

#: Years JP1 accepts in dates of calendars and schedule rules.
FIRST_YEAR, LAST_YEAR = 1994, 2036
