"""The Windows checks, one module each, listed explicitly (SPEC §4 ids)."""

from __future__ import annotations

from handlers.registry import default_registry

CHECK_MODULES = (
    "image_os_mismatch",
    "pause_image",
    "linux_pod_on_windows",
    "dns_after_reboot",
    "serviceaccount_token",
    "apiserver_unreachable",
    "node_clusterip",
    "node_services",
    "known_bad_build",
    "os_lifecycle",
    "memory_overcommit",
    "image_pull_slow",
    "hostprocess_pod",
    "gmsa",
    "cni_not_ready",
    "runtime_wedged",
    "csi_proxy",
    "hns_stale_endpoints",
    "port_exhaustion",
)

__all__ = ["CHECK_MODULES", "default_registry"]
