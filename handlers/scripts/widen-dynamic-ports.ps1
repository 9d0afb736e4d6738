# winpod-script: widen-dynamic-ports
# Sets this node's TCP dynamic port range to Start/Count (netsh int ipv4 set dynamicport tcp;
# persistent), the range winpod chose clear of the NodePorts 30000-32767 and of the excluded
# ranges (AgentBaker#1352, image-builder#947). New connections use it at once; HNS's existing
# reservations stay. Prints the range before and after as one JSON object; exit 1 on failure.
param(
    [string]$Start = '{{Start}}',
    [string]$Count = '{{Count}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
Remove-TypeData System.Array -ErrorAction SilentlyContinue
function Get-Range {
    $n = [regex]::Matches((netsh int ipv4 show dynamicport tcp | Out-String), ':\s*(\d+)')
    [ordered]@{ start = [int]$n[0].Groups[1].Value; count = [int]$n[1].Groups[1].Value }
}
$r = [ordered]@{ script = 'widen-dynamic-ports'; host = [System.Net.Dns]::GetHostName(); ok = $false }
try {
    $s = [int]$Start; $c = [int]$Count
    if ($s -le 32767 -or $s + $c -gt 65536) { throw "refusing range $($s) +$($c): it must start above 32767 and end by 65535" }
    $r.before = Get-Range
    $out = netsh int ipv4 set dynamicport tcp start=$s num=$c | Out-String
    if ($LASTEXITCODE -ne 0) { throw "netsh: $($out.Trim())" }
    $r.after = Get-Range
    $r.excluded = @(netsh int ipv4 show excludedportrange protocol=tcp | ForEach-Object {
        if ($_ -match '^\s*(\d+)\s+(\d+)') { [ordered]@{ start = [int]$Matches[1]; end = [int]$Matches[2] } }
    })
    $r.ok = $true
} catch { $r['error'] = "$_" }
$r | ConvertTo-Json -Compress -Depth 4
if (-not $r.ok) { [Console]::Error.WriteLine($r['error']); exit 1 }
