"""Component ids shared by more than one module of the pages, declared once."""

# The one-map page (一张图)
URL = "url"
MAP = "onemap-map"
REGISTRY_STORE = "registry"
STATE_STORE = "map-state"
CLICKED_STORE = "clicked-object"
VIEW_REQUEST = "view-request"
LAYERS_SYNCED = "layers-synced"
VIEW_APPLIED = "view-applied"
MAP_DRAWN = "map-drawn"  # set once the first view's tiles are drawn: the side panel waits for it
AREA_VALUE = "area-value"
AREA_SELECT = "area-select"
AREA_OUTLINE = "area-outline"
MARKER_LAYER = "marker-layer"
PANEL_TABS = "panel-tabs"
PANEL_BODY = "panel-body"  # a lazily built tab's content
PANEL_TOOLS = "panel-tools"  # a lazily built tab's tools on the map
# Copies, inside each lazily built tab, of what its callbacks listen to outside it (a callback may
# not mix inputs that exist with inputs of a tab not yet built): the open tab, map clicks, the
# clicked object.
PANEL_TAB = "panel-tab"
PANEL_MAP_CLICK = "panel-map-click"
PANEL_OBJECT = "panel-object"
DISTRICT_LAYER = "district-layer"
VT_HOST = "vector-tile-host"

# The big screen (指挥中心大屏)
BS_MAP = "bs-map"
BS_VT_HOST = "bs-vector-tile-host"
BS_REGISTRY = "bs-registry"
BS_VIEW = "bs-view"
BS_VIEWS = "bs-views"
BS_WANTED = "bs-wanted"
BS_SHOWN = "bs-shown"
BS_PIN = "bs-pin"
BS_ALARMS = "bs-alarms"
BS_FLOWN = "bs-flown"
BS_SCALE = "bs-scale"
BS_SYNCED = "bs-synced"
BS_TICK = "bs-tick"
BS_ROTATE = "bs-rotate"
BS_BANNER = "bs-banner"
BS_KPIS = "bs-kpis"
BS_FEED = "bs-feed"
BS_HOT = "bs-hot"
BS_UPDATED = "bs-updated"
BS_HOME = "bs-home"
BS_HOMED = "bs-homed"


def panel_body(tab: str) -> dict:
    """Id of the content of a side-panel tab built when first opened."""
    return {"type": PANEL_BODY, "tab": tab}


def panel_tools(tab: str) -> dict:
    """Id of the map layer group that takes a lazily built tab's map tools."""
    return {"type": PANEL_TOOLS, "tab": tab}


def in_panel(kind: str, tab: str) -> dict:
    """Id of the copy of `kind` (PANEL_TAB, PANEL_MAP_CLICK, PANEL_OBJECT) inside a lazy tab."""
    return {"type": kind, "tab": tab}
