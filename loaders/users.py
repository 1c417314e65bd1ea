"""`python -m loaders user …` and `token …`: manage users and API tokens; demo users per role."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from auth import accounts
from auth.passwords import new_password
from auth.roles import ROLES
from settings import PROJECT_ROOT

DEMO_PASSWORDS = PROJECT_ROOT / "var" / "demo_users.txt"


def add_arguments(sub) -> None:
    """The `user` and `token` sub-commands."""
    user = sub.add_parser("user", help="用户管理（添加、停用、重置密码、列表）")
    usub = user.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="添加用户（打印一次性密码）")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=list(ROLES))
    add.add_argument(
        "--area", action="append", default=[], help="区县/街道代码（district 角色必填）"
    )
    add.add_argument("--name", help="显示名称")
    for action, help_text in (("disable", "停用用户并吊销其令牌"), ("enable", "启用用户"),
                              ("reset", "重置密码（打印一次性密码）")):  # fmt: skip
        usub.add_parser(action, help=help_text).add_argument("username")
    usub.add_parser("list", help="列出用户")
    token = sub.add_parser("token", help="API 令牌（创建、列表、吊销）")
    tsub = token.add_subparsers(dest="action", required=True)
    create = tsub.add_parser("create", help="为用户创建令牌（只显示一次）")
    create.add_argument("username")
    create.add_argument("--name", default="api")
    create.add_argument("--days", type=int, help="有效天数（默认不过期）")
    tsub.add_parser("list", help="列出令牌")
    tsub.add_parser("revoke", help="吊销令牌").add_argument("id", type=int)


def run_user(args, engine: Engine) -> int:
    """Carry out a `user` action in one transaction, audited."""
    with engine.begin() as conn:
        if args.action == "list":
            for u in accounts.list_users(conn):
                state = "启用" if u["active"] else "停用"
                print(
                    f"{u['id']:>4} {u['username']:<16} {u['role']:<9} {state} {','.join(u['areas'])}"
                )
            return 0
        if args.action == "add":
            password = new_password()
            accounts.add_user(conn, args.username, args.role, password, areas=args.area,
                              display_name=args.name)  # fmt: skip
            print(f"已添加用户 {args.username}（{ROLES[args.role].title}），一次性密码：{password}")
        elif args.action == "reset":
            password = new_password()
            accounts.set_password(conn, args.username, password)
            print(f"已重置 {args.username} 的密码：{password}")
        else:
            accounts.set_active(conn, args.username, args.action == "enable")
            print(f"已{'启用' if args.action == 'enable' else '停用'}用户 {args.username}")
        accounts.audit(conn, "cli", f"user_{args.action}", args.username)
    return 0


def run_token(args, engine: Engine) -> int:
    """Carry out a `token` action in one transaction, audited."""
    with engine.begin() as conn:
        if args.action == "list":
            for t in accounts.list_tokens(conn):
                state = "已吊销" if t["revoked_at"] else "有效"
                print(
                    f"{t['id']:>4} {t['username']:<16} {t['name']:<16} {state} 到期 {t['expires_at']}"
                )
            return 0
        if args.action == "create":
            token_id, token = accounts.create_token(conn, args.username, args.name, args.days)
            print(f"令牌 {token_id}（{args.username}）：{token}\n请妥善保存，它不会再次显示。")
            accounts.audit(conn, "cli", "token_create", args.username, {"id": token_id})
        else:
            accounts.revoke_token(conn, args.id)
            print(f"已吊销令牌 {args.id}")
            accounts.audit(conn, "cli", "token_revoke", str(args.id))
    return 0


def ensure_demo_users(conn: Connection, admin_password: str = "") -> list[tuple[str, str]]:
    """One user per role (the district user scoped to the demo's first street) when none exist."""
    if accounts.count_users(conn):
        return []
    street = conn.execute(text("SELECT code FROM admin_area WHERE level = 'street' ORDER BY code "
                               "LIMIT 1")).scalar()  # fmt: skip
    created = []
    for role in ROLES:
        if role == "district" and street is None:
            continue
        password = admin_password if role == "admin" and admin_password else new_password()
        areas = [street] if role == "district" else []
        accounts.add_user(conn, role, role, password, areas=areas, display_name=ROLES[role].title)
        created.append((role, password))
    accounts.audit(conn, "bootstrap", "user_add", ",".join(r for r, _ in created))
    return created


def report_demo_users(created: list[tuple[str, str]]) -> None:
    """Print the one-time passwords and keep them in var/demo_users.txt (mode 600)."""
    if not created:
        return
    lines = [f"{role:<10} {password}" for role, password in created]
    DEMO_PASSWORDS.parent.mkdir(exist_ok=True)
    DEMO_PASSWORDS.touch(mode=0o600)
    DEMO_PASSWORDS.write_text("用户名     一次性密码\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print(
        "已创建用户（每个角色一个，用户名即角色名；密码只显示这一次，也保存在 var/demo_users.txt）："
    )
    for line in lines:
        print("  " + line)
