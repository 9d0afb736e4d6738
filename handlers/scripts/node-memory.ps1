# winpod-script: node-memory
# Physical memory of this node and how much of it is still available, in MB (read-only).
# Windows has no out-of-memory killer: when available memory runs out the node pages, then fails
# to create or terminate pods. Prints one JSON object.
param()
$ErrorActionPreference = 'Stop'
# Node names and errors in the JSON survive any console code page.
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$os = Get-CimInstance -ClassName Win32_OperatingSystem
# Win32_OperatingSystem reports both sizes in KB.
$r = [ordered]@{
    script = 'node-memory'; host = [System.Net.Dns]::GetHostName()
    totalMB = [int64][math]::Floor($os.TotalVisibleMemorySize / 1024)
    availableMB = [int64][math]::Floor($os.FreePhysicalMemory / 1024)
}
$r | ConvertTo-Json -Compress
