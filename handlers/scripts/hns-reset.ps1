# winpod-script: hns-reset
# Rebuilds this node's HNS state when a reboot left stale policies (DNS fails in its pods): stops
# kubeproxy and kubelet, removes all HNS policy lists and then the L2Bridge network (policy lists
# first, or Server 2019 fails with "The network was not found"), then starts kubelet and kubeproxy.
# A failed stop or removal skips the later removals; both starts always run. Prints one JSON
# object with every step's result; exit 1 if any step failed.
param()
$ErrorActionPreference = 'Stop'
$steps = New-Object System.Collections.ArrayList
function Invoke-Step([string]$Name, [scriptblock]$Action) {
    try {
        & $Action | Out-Null
        [void]$steps.Add([ordered]@{ step = $Name; ok = $true })
        $true
    } catch {
        [void]$steps.Add([ordered]@{ step = $Name; ok = $false; error = "$_" })
        $false
    }
}
$go = $true
try {
    if (-not (Get-Command Get-HnsPolicyList -ErrorAction SilentlyContinue)) {
        Import-Module 'C:\k\hns.psm1' -DisableNameChecking
    }
} catch {
    # Without the HNS cmdlets nothing is stopped: the node keeps running as it is.
    [void]$steps.Add([ordered]@{ step = 'load hns module'; ok = $false; error = "$_" })
    $go = $false
}
if ($go) { $go = Invoke-Step 'stop kubeproxy' { Stop-Service kubeproxy -Force } }
if ($go) { $go = Invoke-Step 'stop kubelet' { Stop-Service kubelet -Force } }
if ($go) { $go = Invoke-Step 'remove policy lists' { Get-HnsPolicyList | Remove-HnsPolicyList } }
if ($go) {
    $go = Invoke-Step 'remove network' {
        Get-HnsNetwork | Where-Object { "$($_.Type)" -eq 'L2Bridge' } | Remove-HnsNetwork
    }
}
$null = Invoke-Step 'start kubelet' { Start-Service kubelet }
$null = Invoke-Step 'start kubeproxy' { Start-Service kubeproxy }
$failed = @($steps | Where-Object { -not $_.ok })
$r = [ordered]@{
    script = 'hns-reset'; host = [System.Net.Dns]::GetHostName(); steps = $steps
    ok = $failed.Count -eq 0
}
$r | ConvertTo-Json -Compress -Depth 5
if ($failed.Count) {
    [Console]::Error.WriteLine(($failed | ForEach-Object { "$($_.step): $($_.error)" }) -join "`n")
    exit 1
}
