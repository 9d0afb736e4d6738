"""`winpod remediate` and `winpod audit` from a terminal: the same remediations and audit log."""

from __future__ import annotations

import getpass
import sys
import uuid
from datetime import timedelta

from bot import render_text
from bot.store import Store
from bot.wiring import build_transports
from config.settings import Settings
from handlers import remediations
from handlers.checks import default_registry
from handlers.errors import BadInput, WinpodError

LOCK_TTL_S = 15 * 60


def remediate(
    settings: Settings, remediation_id: str, target: str, dry_run: bool, yes: bool
) -> int:
    spec = remediations.get_spec(remediation_id)  # unknown ids fail before any connection
    user = f"cli:{getpass.getuser()}"
    store = Store(settings.store.url)
    try:
        store.migrate()
        transports = build_transports(settings)
        plan = remediations.plan(transports, settings, remediation_id, target)
        print(f"{spec.id} on {target} ({spec.risk} risk): {spec.does(target)}")
        print(f"Impact: {spec.impact(target)}")
        print(f"Exactly what will run ({plan.kind}):\n{plan.preview}\n")
        if dry_run or settings.dry_run:
            store.audit(user, "dry-run", {"remediation": spec.id, "what": plan.what}, target=target)
            print("Dry run: nothing ran.")
            return 0
        if not yes and not confirmed(f"Run {spec.id} on {target}?"):
            store.audit(
                user, "refused", {"remediation": spec.id, "reason": "not confirmed"}, target=target
            )
            print("Nothing ran.")
            return 0
        return _run(store, settings, user, plan)
    finally:
        store.close()


def _run(store: Store, settings: Settings, user: str, plan: remediations.Plan) -> int:
    holder = f"{user}:{uuid.uuid4().hex[:8]}"
    lock = f"target:{plan.target}"
    if not store.acquire_lock(lock, holder, timedelta(seconds=LOCK_TTL_S)):
        print(
            f"winpod: another remediation ({store.lock_holder(lock)}) is running on "
            f"{plan.target}; try again when it has finished",
            file=sys.stderr,
        )
        return 3
    transports = build_transports(settings)
    try:
        store.audit(
            user,
            "execution",
            {"remediation": plan.remediation, "what": plan.what},
            target=plan.target,
        )
        outcome = remediations.execute(transports, settings, plan)
        print(outcome.summary)
        if outcome.output:
            print(outcome.output)
        verification = remediations.verify(transports, settings, plan, None, default_registry())
        state = {True: "fixed", False: "still failing", None: "not verified"}[verification.fixed]
        print(f"Verification — {state}: {verification.summary}")
        for line in verification.evidence:
            print(f"  • {line}")
        ok = outcome.ok and verification.fixed is not False
        store.audit(
            user,
            "result",
            {
                "remediation": plan.remediation,
                "ok": outcome.ok,
                "summary": f"{outcome.summary.splitlines()[0]}; {state}",
            },
            target=plan.target,
        )
        return 0 if ok else 1
    except WinpodError as exc:
        store.audit(
            user,
            "result",
            {"remediation": plan.remediation, "ok": False, "error": str(exc)},
            target=plan.target,
        )
        raise
    finally:
        store.release_lock(lock, holder)


def confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInput("refusing to run without confirmation: no terminal to ask on; pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def audit(settings: Settings, last: int) -> int:
    if last < 1:
        raise BadInput("--last must be at least 1")
    store = Store(settings.store.url)
    try:
        store.migrate()
        print(render_text.audit_text(store.audit_log(last)))
    finally:
        store.close()
    return 0
