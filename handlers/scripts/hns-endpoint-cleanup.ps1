# winpod-script: hns-endpoint-cleanup
# Removes the stale remote HNS endpoints named in Endpoints ('ID=IP,ID=IP': the list the
# approvers saw), and nothing else: an endpoint is removed only while it still exists, is remote
# and has that IP (W-C#631: Get-HnsEndpoint | ? IPAddress -eq X | Remove-HnsEndpoint). Takes a
# snapshot of the remote endpoints before and after. Prints one JSON object; exit 1 on failure.
param(
    [string]$Endpoints = '{{Endpoints}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$removed = New-Object System.Collections.ArrayList
$skipped = New-Object System.Collections.ArrayList
$r = [ordered]@{
    script = 'hns-endpoint-cleanup'; host = [System.Net.Dns]::GetHostName()
    before = @(); removed = $removed; skipped = $skipped; after = @(); ok = $false
}
function Has([string]$Name) { [bool](Get-Command $Name -ErrorAction SilentlyContinue) }
function Get-RemoteEndpoints {
    @(Get-HnsEndpoint | Where-Object { $_.IsRemoteEndpoint } | ForEach-Object {
        [ordered]@{ ID = "$($_.ID)"; IPAddress = "$($_.IPAddress)" }
    })
}
try {
    if (-not (Has Get-HnsNetwork)) {
        $m = @('C:\k\hns.v2.psm1', 'C:\k\hns.psm1') | Where-Object { Test-Path $_ } | Select-Object -First 1
        if (-not $m) { throw 'no HNS cmdlets (Get-HnsNetwork) and no C:\k\hns.v2.psm1 or hns.psm1' }
        Import-Module $m -DisableNameChecking
    }
    $r.before = Get-RemoteEndpoints
    foreach ($pair in ($Endpoints -split ',')) {
        $id, $ip = $pair -split '=', 2
        $ep = @(Get-HnsEndpoint | Where-Object { "$($_.ID)" -eq $id })
        if (-not $ep.Count) {
            [void]$skipped.Add([ordered]@{ ID = $id; IPAddress = $ip; why = 'not found' })
        } elseif (-not $ep[0].IsRemoteEndpoint -or "$($ep[0].IPAddress)" -ne $ip) {
            [void]$skipped.Add([ordered]@{ ID = $id; IPAddress = $ip; why = 'its IP changed' })
        } else {
            $ep[0] | Remove-HnsEndpoint
            [void]$removed.Add([ordered]@{ ID = $id; IPAddress = $ip })
        }
    }
    $r.after = Get-RemoteEndpoints
    $r.ok = $true
} catch { $r['error'] = "$_" }
$r | ConvertTo-Json -Compress -Depth 5
if (-not $r.ok) { [Console]::Error.WriteLine($r['error']); exit 1 }
