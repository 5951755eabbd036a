complete -c denv -s i -l inherit -d 'Inherit the variable NAME (when it is set)' -r
complete -c denv -s E -l environ -d 'Set NAME to VALUE, or remove NAME when no =VALUE is given' -r
complete -c denv -s d -l envdir -d 'Read variables from the envdir DIR (one per regular file)' -r -F
complete -c denv -s f -l file -d 'Read NAME=VALUE lines from FILE (# starts a comment line)' -r -F
complete -c denv -s I -l inherit-env -d 'Inherit every variable of denv\'s own environment'
complete -c denv -s h -l help -d 'Print help'
complete -c denv -s V -l version -d 'Print version'
