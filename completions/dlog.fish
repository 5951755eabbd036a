complete -c dlog -s i -l input-fd -d 'Read from descriptor FD instead of standard input' -r
complete -c dlog -l max-line -d 'Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "' -r
complete -c dlog -s p -l prefix -d 'Put PREFIX and a space in front of each line (after the timestamp)' -r
complete -c dlog -s b -l buffered -d 'Buffered: do not sync to disk after each batch (the log is still synced before it is closed)'
complete -c dlog -s t -l timestamp -d 'Put a UTC timestamp YYYY-mm-dd/HH:MM:SS in front of each line'
complete -c dlog -s R -l rfc3339 -d 'Put an RFC 3339 UTC timestamp with microseconds in front of each line'
complete -c dlog -s e -l skip-empty -d 'Skip empty lines'
complete -c dlog -s h -l help -d 'Print help'
complete -c dlog -s V -l version -d 'Print version'
