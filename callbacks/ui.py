"""Shared UI text: Chinese labels for the Dash components that ship English ones."""

DROPDOWN_LABELS = {
    "select_all": "全选", "deselect_all": "全不选", "selected_count": "已选 {num_selected} 项",
    "search": "搜索", "clear_search": "清除搜索", "clear_selection": "清除选择",
    "no_options_found": "没有匹配的选项",
}  # fmt: skip
