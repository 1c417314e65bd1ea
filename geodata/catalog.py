"""Every code list and fixed fact of the domain, once (GB/T 30428.2-2013 and practice, DOMAIN.md).

The models' CHECK constraints, the layer registry's filter values, the importers and the demo city
all read these constants; migrations keep frozen copies of what they seed.
"""

from __future__ import annotations

# Storage CRS: CGCS2000 geographic (EPSG:4490); tiles are cut in web mercator (EPSG:3857).
SRID = 4490
WEB_MERCATOR_SRID = 3857
WEB_MERCATOR_HALF = 20037508.342789244  # half the side of the EPSG:3857 world square, in metres
# The city's clock: a case's day and week (windows, weekly series) are counted in this zone.
CITY_TIMEZONE = "Asia/Shanghai"
# Administrative division codes (行政区划代码): district 6, street 9, community 12 digits.
ADMIN_CODE_LENGTHS = {"district": 6, "street": 9, "community": 12}

COMPONENT_MAJOR = {
    "01": "公用设施",
    "02": "道路交通",
    "03": "市容环境",
    "04": "园林绿化",
    "05": "房屋土地",
    "06": "其他设施",
}

COMPONENT_MINOR = {
    "0101": "上水井盖", "0102": "污水井盖", "0103": "雨水井盖", "0104": "雨水箅子",
    "0105": "电力井盖", "0106": "路灯井盖", "0107": "通讯井盖", "0108": "电视井盖",
    "0109": "网络井盖", "0110": "热力井盖", "0111": "燃气井盖", "0112": "公安井盖",
    "0113": "消防设施", "0114": "无主井盖", "0115": "通讯交接箱", "0116": "电力设施",
    "0117": "立杆", "0118": "路灯", "0119": "地灯", "0120": "景观灯", "0121": "报刊亭",
    "0122": "电话亭", "0123": "邮筒", "0124": "信息亭", "0125": "自动售货机",
    "0126": "健身设施", "0127": "中水井盖", "0128": "公交井盖", "0129": "输油(气)井盖",
    "0130": "特殊井盖", "0131": "民用水井", "0132": "供水器", "0133": "高压线铁塔",
    "0134": "变压器(箱)", "0135": "燃气调压站(箱)", "0136": "监控电子眼", "0137": "售货亭",
    "0138": "治安岗亭",
    "0201": "停车场", "0202": "停车咪表", "0203": "公交站亭", "0204": "出租车站牌",
    "0205": "过街天桥", "0206": "地下通道", "0207": "高架立交桥", "0208": "跨河桥",
    "0209": "交通标志牌", "0210": "交通信号灯", "0211": "交通护栏", "0212": "存车支架",
    "0213": "路名牌", "0214": "交通信号设施", "0215": "道路信息显示屏", "0216": "道路隔音屏",
    "0217": "交通岗亭",
    "0301": "公共厕所", "0302": "化粪池", "0303": "公厕指示牌", "0304": "垃圾间(楼)",
    "0305": "垃圾箱", "0306": "灯箱霓虹灯", "0307": "广告牌匾", "0308": "环保监测站",
    "0309": "气象监测站", "0310": "污水口监测站",
    "0401": "古树名木", "0402": "行道树", "0403": "护树设施", "0404": "花架花钵",
    "0405": "绿地", "0406": "雕塑", "0407": "街头坐椅", "0408": "绿地护栏",
    "0409": "绿地维护设施", "0410": "喷泉",
    "0501": "宣传栏", "0502": "人防工事",
    "0601": "重大危险源", "0602": "工地", "0603": "水域附属设施", "0604": "水域护栏",
    "0606": "防汛墙",
}  # fmt: skip

EVENT_MAJOR = {
    "01": "市容环境",
    "02": "宣传广告",
    "03": "施工管理",
    "04": "突发事件",
    "05": "街面秩序",
}

EVENT_MINOR = {
    "0101": "私搭乱建", "0102": "暴露垃圾", "0103": "积存垃圾渣土", "0104": "道路不洁",
    "0105": "水域不洁", "0106": "绿地脏乱", "0107": "废弃车辆", "0108": "废弃家具",
    "0109": "非装饰性树挂", "0110": "道路破损",
    "0201": "非法小广告", "0202": "违章张贴悬挂广告牌匾", "0203": "占道广告牌",
    "0204": "街头散发广告",
    "0301": "施工扰民", "0302": "工地扬尘", "0303": "道路遗撒", "0304": "施工废弃料",
    "0305": "施工占道", "0306": "无证掘路",
    "0401": "路面塌陷", "0402": "自来水管破裂", "0403": "燃气管道破裂",
    "0404": "下水道堵塞或破损", "0405": "供电或通讯线路故障", "0406": "道路积水",
    "0407": "道路积雪结冰", "0408": "火灾",
    "0501": "无照经营游商", "0502": "流浪乞讨", "0503": "占道废品收购", "0504": "店外经营",
    "0505": "机动车乱停放", "0506": "非机动车乱停放", "0507": "乱堆物堆料",
    "0508": "黑车拉客", "0509": "散发小广告", "0510": "露天烧烤", "0511": "沿街晾挂",
}  # fmt: skip

COMPONENT_STATUSES = ("完好", "破损", "丢失", "废弃", "移除")
DATA_SOURCES = ("实测", "地形图", "基础地理数据", "其他")
CASE_SOURCES = ("监督员上报", "视频智能识别", "物联感知", "公众举报", "上级交办")
CASE_STATUSES = ("待立案", "已立案", "已派遣", "已处置", "已核查", "已结案", "已作废")
CASE_KINDS = ("事件", "部件")
ADMIN_LEVELS = {"city": "市", "district": "区县", "street": "街道", "community": "社区"}
GRID_LEVELS = ("市", "区", "街道", "社区")
GRID_KINDS = ("责任网格", "处置网格")
# GB 50137-2011 major land-use classes (城市用地分类).
LAND_USES = {
    "R": "居住用地", "A": "公共管理与公共服务设施用地", "B": "商业服务业设施用地",
    "M": "工业用地", "W": "物流仓储用地", "S": "道路与交通设施用地",
    "U": "公用设施用地", "G": "绿地与广场用地", "E": "非建设用地", "H": "建设用地",
}  # fmt: skip
# Park kinds that count for the service-radius indicator (公园绿地 G1 and its sub-classes).
PARK_KINDS = ("G1", "G11", "G12", "G13", "G14")
# CJJ/T 85-2017 城市绿地分类.
GREEN_KINDS = {
    "G1": "公园绿地", "G11": "综合公园", "G12": "社区公园", "G13": "专类公园",
    "G14": "游园", "G2": "防护绿地", "G3": "广场用地", "XG": "附属绿地", "EG": "区域绿地",
}  # fmt: skip
ROAD_CLASSES = ("快速路", "主干路", "次干路", "支路", "街巷")
PIPE_KINDS = ("雨水", "污水", "合流")
SANITATION_KINDS = ("公共厕所", "垃圾箱", "垃圾收集点", "垃圾中转站", "垃圾处理厂")
PARKING_TYPES = ("路内", "路外", "立体", "地下")
OCCUPANCY_LEVELS = ("空闲", "较满", "紧张", "无数据")  # parking_lot_status view (migration 0005)
CASE_STAGES = ("reported_at", "registered_at", "dispatched_at", "handled_at", "verified_at",
               "closed_at")  # 上报→立案→派遣→处置→核查→结案, in order  # fmt: skip
RISK_LEVELS = ("低", "中", "高")
SENSOR_KINDS = ("液位", "井盖位移", "满溢")
ALARM_LEVELS = ("提示", "一般", "严重", "紧急")
ALARM_STATES = ("未处理", "处理中", "已解除")
GEOCODE_KINDS = ("门牌", "楼牌", "兴趣点")


def checked(values, code_list, name: str) -> tuple:
    """The values, after checking each is in the code list (for tables keyed by code values)."""
    unknown = [v for v in values if v not in code_list]
    if unknown:
        raise ValueError(f"{name}: {unknown} not in the catalogue")
    return tuple(values)


def component_class_rows() -> list[dict]:
    """Rows for the component_class table (部件小类 with its 大类)."""
    return [
        {"code": c, "major_code": c[:2], "major_name": COMPONENT_MAJOR[c[:2]], "name": n}
        for c, n in COMPONENT_MINOR.items()
    ]


def event_class_rows() -> list[dict]:
    """Rows for the event_class table (事件小类 with its 大类)."""
    return [
        {"code": c, "major_code": c[:2], "major_name": EVENT_MAJOR[c[:2]], "name": n}
        for c, n in EVENT_MINOR.items()
    ]
