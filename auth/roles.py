"""Roles (角色) and what each may do; scoping by area is enforced in SQL (see auth/scope.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """What a role may see and do."""

    name: str
    title: str
    restricted_layers: bool = False  # cameras and any layer marked restricted
    archives: bool = True
    person_details: bool = True  # kiosk screens show no names of responsible persons
    analytics: bool = True
    export: bool = False
    admin: bool = False
    scoped: bool = False  # limited to the user's districts/streets


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("admin", "系统管理员", restricted_layers=True, export=True, admin=True),
        Role("leader", "领导", restricted_layers=True),
        Role("operator", "指挥中心值班员", restricted_layers=True),
        Role("planner", "规划分析人员", export=True),
        Role("district", "区县/街道用户", scoped=True),
        Role("kiosk", "大屏", person_details=False, analytics=False),
    )
}
PERSON_FIELDS = ("person", "owner_contact", "reporter", "phone")
