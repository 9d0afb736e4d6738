# winpod-script: mac-spoofing
# Runs on a Hyper-V host: reads MacAddressSpoofing of the named VM's network adapters and, with
# Enable 'true', turns it On (a node VM's pods reach nothing off the node without it); Enable
# 'false' only reads. Prints one JSON object; exit 1 (and the reason on stderr) on failure.
param(
    [string]$VMName = '{{VMName}}',
    [string]$Enable = '{{Enable}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
# Else Windows PowerShell 5.1 may write an array as {"value":[...],"Count":n}.
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$r = [ordered]@{
    script = 'mac-spoofing'; host = [System.Net.Dns]::GetHostName(); vm = $VMName
    adapters = @(); changed = $false
}
try {
    if ($Enable -notin 'true', 'false') { throw "Enable must be 'true' or 'false', not '$Enable'" }
    if (-not (Get-Command Get-VMNetworkAdapter -ErrorAction SilentlyContinue)) {
        throw "no Hyper-V module here (Get-VMNetworkAdapter): run it on the VM's Hyper-V host"
    }
    $a = @(Get-VMNetworkAdapter -VMName $VMName)
    $off = @($a | Where-Object { "$($_.MacAddressSpoofing)" -ne 'On' })
    if ($Enable -eq 'true' -and $off.Count) {
        $off | Set-VMNetworkAdapter -MacAddressSpoofing On
        $r.changed = $true
        $a = @(Get-VMNetworkAdapter -VMName $VMName)
    }
    $r.adapters = @($a | ForEach-Object {
        [ordered]@{ name = $_.Name; macAddressSpoofing = "$($_.MacAddressSpoofing)" } })
} catch {
    $r['error'] = if ($_.InvocationInfo.MyCommand) { "$($_.InvocationInfo.MyCommand) : $_" } else { "$_" }
}
$r | ConvertTo-Json -Compress -Depth 5
if ($r.Contains('error')) { [Console]::Error.WriteLine($r['error']); exit 1 }
