complete -c dmon -s C -l config -d 'Read options from FILE (only as the first option); see dmon(8) for the format' -r -F
complete -c dmon -s I -l write-info -d 'Append one status line per event to PATH (a file, a FIFO, a terminal, /dev/stdout)' -r -F
complete -c dmon -l status-format -d 'The format of -I\'s records: DMon\'s text lines, or JSON Lines' -r -f -a "text\t'DMon\'s lines (cmd start 1234, cmd exit 1234 256)'
json\t'JSON Lines: one object per event, with a time stamp (see docs/status.md)'"
complete -c dmon -s p -l pid-file -d 'Write dmon\'s pid to PATH, locked while dmon runs' -r -F
complete -c dmon -l control -d 'Be controlled by runit\'s sv: keep DIR/supervise/ (DIR/log/supervise/ for the log command) as runsv does' -r -F
complete -c dmon -s W -l work-dir -d 'Change to DIR before starting the commands (default: / for a daemon, unchanged with -n)' -r -F
complete -c dmon -s i -l interval -d 'After a successful (zero) exit, wait TIME before starting again' -r
complete -c dmon -s t -l timeout -d 'Stop the whole command tree when a run lasts longer than TIME, then start again' -r
complete -c dmon -s L -l load-high -d 'Pause the whole command tree while the load average is above N' -r
complete -c dmon -s l -l load-low -d 'Resume once the load average is below N (default: half of -L)' -r
complete -c dmon -s E -l environ -d 'Set NAME to VALUE, or remove NAME without =VALUE (repeatable)' -r
complete -c dmon -s u -l cmd-user -d 'Run the command as USER, with the listed groups' -r
complete -c dmon -s U -l log-user -d 'Run the log command as USER, with the listed groups' -r
complete -c dmon -s g -l cmd-group -d 'Primary group of the command (with -u)' -r
complete -c dmon -s G -l log-group -d 'Primary group of the log command (with -U)' -r
complete -c dmon -s m -l max-respawns -d 'Start the command again at most N times, then exit with its last status' -r
complete -c dmon -s r -l limit -d 'Set a resource limit NAME=VALUE for both commands (repeatable; -r help lists them)' -r
complete -c dmon -l cap -d 'Keep this capability after dropping to -u/-U\'s user (repeatable), e.g. NET_BIND_SERVICE' -r
complete -c dmon -l umask -d 'The file mode creation mask of both commands, in octal (default 022 for -u\'s and -U\'s)' -r
complete -c dmon -l grace -d 'How long a stopped tree gets between TERM and KILL' -r
complete -c dmon -l backoff-max -d 'The longest wait between restarts of a command that keeps failing' -r
complete -c dmon -l tree -d 'How to control the command tree: a cgroup, or signals where none can be had' -r -f -a "auto\t'cgroup v2 where writable, else the v1 freezer, else signals'
cgroup2\t'A cgroup v2 leaf: freeze, thaw and cgroup.kill'
freezer\t'A cgroup v1 freezer leaf'
signals\t'Process group, subreaper and a walk of the process tree'"
complete -c dmon -l cgroup-parent -d 'Make dmon\'s cgroups under DIR instead of under dmon\'s own cgroup' -r -F
complete -c dmon -l pressure -d 'Pause the whole command tree while cpu (the default), memory or io pressure is above HIGH percent, resume once below LOW (default: half); once per source, also with -L' -r
complete -c dmon -l memory-max -d 'Kill the command\'s tree (and, apart, the log command\'s) when its memory use reaches SIZE (one OOM event ends the whole run)' -r
complete -c dmon -l memory-high -d 'Throttle the command\'s tree (and, apart, the log command\'s) when its memory use is above SIZE (cgroup v2 only)' -r
complete -c dmon -l pids-max -d 'Let the command\'s tree (and, apart, the log command\'s) have at most N processes and threads' -r
complete -c dmon -l cpu-quota -d 'Give the command\'s tree (and, apart, the log command\'s) at most PERCENT of one CPU (above 100% for more than one)' -r
complete -c dmon -s n -l no-daemon -d 'Stay in the foreground, sharing the terminal with the command'
complete -c dmon -s 1 -l once -d 'Stop once the command exits with status 0'
complete -c dmon -s e -l stderr-redir -d 'Send the command\'s standard error to the log command too'
complete -c dmon -s s -l cmd-sigs -d 'Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the command'
complete -c dmon -s S -l log-sigs -d 'Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the log command'
complete -c dmon -l no-new-privs -d 'Set no_new_privs for the command and the log command (--cap sets it too)'
complete -c dmon -l allow-new-privs -d 'With --cap, leave no_new_privs off: a set-user-ID root program may then regain uid 0'
complete -c dmon -l clean-env -d 'Start both commands from a clean environment: TERM, LANG, LANGUAGE, LC_*, TZ, the user\'s USER, LOGNAME and HOME, a default PATH, and -E'
complete -c dmon -s v -l verbose -d 'Log more about what dmon does (repeat for more; DMON_LOG=debug does the same)'
complete -c dmon -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dmon -s V -l version -d 'Print version'
