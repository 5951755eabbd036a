complete -c drlog -s m -l max-files -d 'Keep at most N rotated files (0: keep all)' -r
complete -c drlog -s T -l max-time -d 'Rotate once current has been in use for TIME (0: never by age)' -r
complete -c drlog -s s -l max-size -d 'Rotate before current would grow over SIZE (0: never by size)' -r
complete -c drlog -s i -l input-fd -d 'Read from descriptor FD instead of standard input' -r
complete -c drlog -l max-line -d 'Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "' -r
complete -c drlog -s p -l prefix -d 'Put PREFIX and a space in front of each line (after the timestamp)' -r
complete -c drlog -s b -l buffered -d 'Buffered: do not sync to disk after each batch (the log is still synced before it is closed)'
complete -c drlog -s t -l timestamp -d 'Put a UTC timestamp YYYY-mm-dd/HH:MM:SS in front of each line'
complete -c drlog -s R -l rfc3339 -d 'Put an RFC 3339 UTC timestamp with microseconds in front of each line'
complete -c drlog -s e -l skip-empty -d 'Skip empty lines'
complete -c drlog -s h -l help -d 'Print help'
complete -c drlog -s V -l version -d 'Print version'
