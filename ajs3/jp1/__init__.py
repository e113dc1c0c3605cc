"""JP1/AJS3 unit definition files: import (ajsprint output) and export (ajsdefine input)."""
