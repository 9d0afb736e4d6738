"""The real node-PowerShell adapter over pywinrm (WinRM over HTTPS, NTLM by default)."""

from __future__ import annotations

import requests
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError

from config.settings import WinRMSettings
from handlers.errors import BadInput, Refused, TimedOut, Unreachable
from handlers.transports import CommandResult


class WinRMShell:
    """`NodeShell` over pywinrm: one session per call, certificate validation on by default."""

    def __init__(self, settings: WinRMSettings) -> None:
        if settings.username is None or settings.password is None:
            raise BadInput(
                "WinRM credentials are not configured: set WINPOD_WINRM__USERNAME and "
                "WINPOD_WINRM__PASSWORD"
            )
        self._settings = settings

    def run_script(self, address: str, script: str, timeout_s: float) -> CommandResult:
        settings = self._settings
        assert settings.username is not None and settings.password is not None
        operation = max(1, min(settings.operation_timeout_s, int(timeout_s)))
        read = max(operation + 1, min(settings.read_timeout_s, int(timeout_s) + 5))
        options: dict[str, object] = {
            "transport": settings.transport,
            "server_cert_validation": "validate" if settings.verify else "ignore",
            "operation_timeout_sec": operation,
            "read_timeout_sec": read,
        }
        if settings.ca_bundle:
            options["ca_trust_path"] = settings.ca_bundle
        endpoint = f"{settings.scheme}://{address}:{settings.port}/wsman"
        where = f"WinRM on {address}:{settings.port}"
        try:
            session = winrm.Session(
                endpoint,
                auth=(settings.username.get_secret_value(), settings.password.get_secret_value()),
                **options,
            )
            _read_proxy_environment_once(session)
            response = session.run_ps(script)
        except InvalidCredentialsError:
            raise Refused(f"{where} refused the configured credentials") from None
        except requests.exceptions.SSLError:
            raise Refused(
                f"{where}: the node's certificate is not trusted (set winrm.ca_bundle)"
            ) from None
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout):
            raise TimedOut(f"{where} did not answer within {read} s") from None
        except requests.exceptions.ConnectionError:
            raise Unreachable(f"cannot connect to {where}") from None
        except (WinRMTransportError, WinRMError) as exc:
            code = getattr(exc, "code", None)
            raise Unreachable(f"{where} failed ({code or type(exc).__name__})") from None
        return CommandResult(
            response.std_out.decode("utf-8", "replace"),
            response.std_err.decode("utf-8", "replace"),
            int(response.status_code),
        )


def _read_proxy_environment_once(session: winrm.Session) -> None:
    """pywinrm settles the proxy for this one endpoint when it builds its requests session,
    and requests would then read the proxy environment again for every message: seven per
    script, each a scan of all of os.environ (hundreds of variables in a pod with service
    links), about a fifth of the bot's CPU per script in the benchmarks. Build the session now
    and keep what it settled."""
    session.protocol.transport.build_session().trust_env = False
