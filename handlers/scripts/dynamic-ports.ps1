# winpod-script: dynamic-ports
# Reads this node's TCP dynamic port range (netsh int ipv4 show dynamicport tcp) and the port
# ranges excluded from it (show excludedportrange protocol=tcp): HNS reserves 64-port blocks
# there for non-DSR load balancers and SNAT; at 10 free blocks or fewer new sandboxes and DNS
# fail (AKS#1375, networkhealth.ps1 PortExhaustionTest). Numbers only are read, so the
# console's language does not matter. Changes nothing. Prints one JSON object.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$r = [ordered]@{ script = 'dynamic-ports'; host = [System.Net.Dns]::GetHostName(); tcp = $null; excluded = @(); errors = @() }
try {
    # "Start Port : 49152" then "Number of Ports : 16384"
    $n = [regex]::Matches((netsh int ipv4 show dynamicport tcp | Out-String), ':\s*(\d+)')
    if ($n.Count -lt 2) { throw 'netsh printed no dynamic port range' }
    $r.tcp = [ordered]@{ start = [int]$n[0].Groups[1].Value; count = [int]$n[1].Groups[1].Value }
    $r.excluded = @(netsh int ipv4 show excludedportrange protocol=tcp | ForEach-Object {
        if ($_ -match '^\s*(\d+)\s+(\d+)') { [ordered]@{ start = [int]$Matches[1]; end = [int]$Matches[2] } }
    })
} catch { $r.errors += "netsh: $_" }
$r | ConvertTo-Json -Compress -Depth 4
if ($r.errors.Count) { exit 1 }
