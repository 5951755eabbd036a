complete -c dsyslog -s p -l priority -d 'Priority: emerg, alert, crit, err, warning, notice, info, debug (any case)' -r
complete -c dsyslog -s f -l facility -d 'Facility: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7' -r
complete -c dsyslog -s i -l input-fd -d 'Read from descriptor FD instead of standard input' -r
complete -c dsyslog -l max-line -d 'Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "' -r
complete -c dsyslog -l socket -d 'The system log socket' -r -F
complete -c dsyslog -l console-device -d 'The console device for -c' -r -F
complete -c dsyslog -l max-message -d 'Send a longer line as consecutive messages of at most SIZE bytes' -r
complete -c dsyslog -s c -l console -d 'Write to the console when the system log cannot be reached'
complete -c dsyslog -s e -l skip-empty -d 'Skip empty lines'
complete -c dsyslog -s h -l help -d 'Print help'
complete -c dsyslog -s V -l version -d 'Print version'
