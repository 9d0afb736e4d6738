"""`gmsa`: a pod's gMSA credential spec is not usable: RBAC, the spec itself, or the domain."""

from __future__ import annotations

import re
from typing import Literal

from handlers.context import Context, event_line
from handlers.errors import NotFound, WinpodError
from handlers.i18n import N_, _
from handlers.model import Finding
from handlers.registry import Explanation, check
from handlers.transports import KubeObject

CHECK_ID = "gmsa"
DOCS = (
    "https://kubernetes.io/docs/tasks/configure-pod-container/configure-gmsa/",
    "https://github.com/kubernetes-sigs/windows-gmsa",
    "https://github.com/Azure/AKS/issues/3849",
)
Cause = Literal["rbac", "spec", "domain"]
# windows-gmsa's admission webhook: service account %s is not authorized `use` gMSA cred spec %s
RBAC_DENIED = re.compile(r"not authorized\W+use\W+gmsa", re.I)
# the webhook when the named GMSACredentialSpec is missing; Container Credential Guard when the
# account or credentials in the spec are not accepted (AKS#3849)
SPEC_INVALID = re.compile(
    r"cred(?:ential)? ?spec\S* \S+ (?:does not exist|not found)"  # i18n: regex
    r"|attempted logon is invalid|Container Credential Guard failed",
    re.I,
)
# nltest /parentdomain and friends: no domain controller answers (1722, 0x6ba)
DOMAIN_UNREACHABLE = re.compile(r"RPC_S_SERVER_UNAVAILABLE|\b0x6ba\b|Status = 1722\b", re.I)
CAUSES: dict[Cause, str] = {
    "rbac": N_(
        "the pod's ServiceAccount may not `use` the GMSACredentialSpec: grant a Role with verb "
        "`use` on gmsacredentialspecs (resourceNames: the spec) bound to that ServiceAccount"
    ),
    "spec": N_(
        "the credential spec is missing, invalid or was not applied: create the "
        "GMSACredentialSpec (New-CredentialSpec output) with the right account and domain, "
        "and make sure the gMSA webhook runs"
    ),
    "domain": N_(
        "the container cannot reach a domain controller: check DNS to the domain (also over TCP "
        "53) and the path from the node to the DCs; the node must be allowed to retrieve the "
        "gMSA's password"
    ),
}


def credential_spec_names(pod: KubeObject) -> list[str]:
    spec = pod.get("spec") or {}
    holders = [spec, *(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    names = [
        ((h.get("securityContext") or {}).get("windowsOptions") or {}).get("gmsaCredentialSpecName")
        for h in holders
    ]
    return list(dict.fromkeys(str(n) for n in names if n))


def spec_problem(spec: KubeObject) -> str | None:
    """What makes a GMSACredentialSpec unusable, or None when it names an account and domain."""
    credspec = spec.get("credspec") or {}
    accounts = (credspec.get("ActiveDirectoryConfig") or {}).get("GroupManagedServiceAccounts")
    domain = credspec.get("DomainJoinConfig") or {}
    if not accounts:
        return _("it names no account (credspec.ActiveDirectoryConfig.GroupManagedServiceAccounts)")
    if not domain.get("DnsName") or not domain.get("MachineAccountName"):
        return _("it names no domain (credspec.DomainJoinConfig.DnsName / MachineAccountName)")
    return None


@check(
    CHECK_ID,
    title=N_("gMSA credential spec"),
    scopes=("pod",),
    explanation=Explanation(
        cause=(
            N_(
                "A Windows pod gets an Active Directory identity through a group Managed Service "
                "Account: securityContext.windowsOptions.gmsaCredentialSpecName names a "
                "GMSACredentialSpec (CRD windows.k8s.io/v1), whose contents the gMSA webhook puts "
                "into the pod. It fails for one of three reasons: the ServiceAccount may not `use` "
                "the spec (RBAC), the spec is missing, invalid or not applied, or the container "
                "cannot reach a domain controller."
            )
        ),
        signals=(
            N_("webhook: service account … is not authorized `use` gMSA cred spec …"),
            N_(
                "nltest /parentdomain: Getting parent domain failed: Status = 1722 0x6ba "
                "RPC_S_SERVER_UNAVAILABLE"
            ),
            N_(
                "Container Credential Guard failed to fetch gmsa credentials … The attempted "
                "logon is invalid"
            ),
            N_("whether the named GMSACredentialSpec exists (and the CRD at all)"),
        ),
        fixes=(
            N_(
                "RBAC: a Role with verb `use` on the gmsacredentialspecs resource name, bound to "
                "the "
                "pod's ServiceAccount"
            ),
            N_("spec: create it from New-CredentialSpec's JSON; install the gMSA webhook and CRD"),
            N_(
                "domain: DNS to the domain controllers (UDP and TCP 53) and the node allowed to "
                "retrieve the gMSA password"
            ),
        ),
        links=DOCS,
    ),
)
def gmsa(context: Context) -> list[Finding]:
    assert context.pod is not None
    pod = context.pod
    names = credential_spec_names(pod)
    if not names:
        return [Finding(CHECK_ID, "ok", _("No gMSA"), _("the pod uses no gMSA credential spec"))]
    evidence: list[str] = [f"gmsaCredentialSpecName: {', '.join(names)}"]
    causes: list[Cause] = []
    for event in _events(context):
        message = str(event.get("message", ""))
        found: Cause | None = None
        if RBAC_DENIED.search(message):
            found = "rbac"
        elif SPEC_INVALID.search(message):
            found = "spec"
        elif DOMAIN_UNREACHABLE.search(message):
            found = "domain"
        if found:
            causes.append(found)
            evidence.append(event_line(event))
    missing, invalid = _check_specs(context, names, evidence)
    failing = bool(causes)
    # A missing spec is a fault by itself; an incomplete one only explains failures seen (a
    # scenario or a hand-written spec may leave out fields Windows does not need).
    if missing or (invalid and failing):
        # a missing or broken spec explains an unreachable-domain symptom too (nothing applied)
        causes = [c if c != "domain" else "spec" for c in causes] or ["spec"]
    if not causes:
        return [
            Finding(
                CHECK_ID,
                "ok",
                _("gMSA credential spec in place"),
                _("GMSACredentialSpec {names} exists and no gMSA failure was reported").format(
                    names=", ".join(names)
                ),
                tuple(evidence),
            )
        ]
    ordered = list(dict.fromkeys(causes))
    summary = _("The evidence points to {label}: {cause}.").format(
        label=_label(ordered[0]), cause=_(CAUSES[ordered[0]])
    )
    if len(ordered) > 1:
        summary += " " + _("Also seen: {causes}.").format(
            causes="; ".join(_(CAUSES[c]) for c in ordered[1:])
        )
    return [
        Finding(
            CHECK_ID,
            "error" if failing else "warning",
            _("gMSA fails: {label}").format(label=_label(ordered[0])),
            summary,
            tuple(evidence),
            (),
            DOCS,
        )
    ]


def _label(cause: Cause) -> str:
    labels = {
        "rbac": N_("RBAC `use` permission"),
        "spec": N_("the credential spec"),
        "domain": N_("the domain is unreachable"),
    }
    return _(labels[cause])


def _check_specs(context: Context, names: list[str], evidence: list[str]) -> tuple[bool, bool]:
    """Whether the named GMSACredentialSpecs (or their CRD) are missing, and whether one is
    invalid; notes what it saw."""
    try:
        specs = context.gmsa_credential_specs()
    except WinpodError as exc:
        evidence.append(_("could not read GMSACredentialSpecs: {error}").format(error=exc))
        return False, False
    if specs is None:
        evidence.append(
            _(
                "the cluster has no GMSACredentialSpec CRD (windows.k8s.io/v1 "
                "gmsacredentialspecs): the gMSA webhook is not installed, so no credential spec "
                "can be applied"
            )
        )
        return True, False
    by_name = {str((s.get("metadata") or {}).get("name")): s for s in specs}
    missing = invalid = False
    for name in names:
        spec = by_name.get(name)
        if spec is None:
            evidence.append(_("GMSACredentialSpec {name} does not exist").format(name=name))
            missing = True
            continue
        problem = spec_problem(spec)
        if problem:
            evidence.append(
                _("GMSACredentialSpec {name} is invalid: {problem}").format(
                    name=name, problem=problem
                )
            )
            invalid = True
        else:
            accounts = (spec.get("credspec") or {}).get("ActiveDirectoryConfig") or {}
            account = (accounts.get("GroupManagedServiceAccounts") or [{}])[0]
            evidence.append(
                f"GMSACredentialSpec {name}: account {account.get('Scope')}\\{account.get('Name')}"
            )
    return missing, invalid


def _events(context: Context) -> list[KubeObject]:
    """The pod's events and its owner's (the webhook refuses pods on their ReplicaSet)."""
    assert context.pod is not None
    events = list(context.pod_events())
    meta = context.pod.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        try:
            events.extend(context.owner_events(str(owner.get("name")), str(owner.get("kind"))))
        except NotFound:
            continue
    return events
