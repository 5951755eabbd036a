#compdef dmon

autoload -U is-at-least

_dmon() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "${_arguments_options[@]}" : \
'-C+[Read options from FILE (only as the first option); see dmon(8) for the format]:FILE:_files' \
'--config=[Read options from FILE (only as the first option); see dmon(8) for the format]:FILE:_files' \
'-I+[Append one status line per event to PATH (a file, a FIFO, a terminal, /dev/stdout)]:PATH:_files' \
'--write-info=[Append one status line per event to PATH (a file, a FIFO, a terminal, /dev/stdout)]:PATH:_files' \
'--status-format=[The format of -I'\''s records\: DMon'\''s text lines, or JSON Lines]:FORMAT:((text\:"DMon'\''s lines (cmd start 1234, cmd exit 1234 256)"
json\:"JSON Lines\: one object per event, with a time stamp (see docs/status.md)"))' \
'-p+[Write dmon'\''s pid to PATH, locked while dmon runs]:PATH:_files' \
'--pid-file=[Write dmon'\''s pid to PATH, locked while dmon runs]:PATH:_files' \
'--control=[Be controlled by runit'\''s sv\: keep DIR/supervise/ (DIR/log/supervise/ for the log command) as runsv does]:DIR:_files' \
'-W+[Change to DIR before starting the commands (default\: / for a daemon, unchanged with -n)]:DIR:_files' \
'--work-dir=[Change to DIR before starting the commands (default\: / for a daemon, unchanged with -n)]:DIR:_files' \
'(-1 --once)-i+[After a successful (zero) exit, wait TIME before starting again]:TIME:_default' \
'(-1 --once)--interval=[After a successful (zero) exit, wait TIME before starting again]:TIME:_default' \
'-t+[Stop the whole command tree when a run lasts longer than TIME, then start again]:TIME:_default' \
'--timeout=[Stop the whole command tree when a run lasts longer than TIME, then start again]:TIME:_default' \
'-L+[Pause the whole command tree while the load average is above N]:N:_default' \
'--load-high=[Pause the whole command tree while the load average is above N]:N:_default' \
'-l+[Resume once the load average is below N (default\: half of -L)]:N:_default' \
'--load-low=[Resume once the load average is below N (default\: half of -L)]:N:_default' \
'*-E+[Set NAME to VALUE, or remove NAME without =VALUE (repeatable)]:NAME[=VALUE]:_default' \
'*--environ=[Set NAME to VALUE, or remove NAME without =VALUE (repeatable)]:NAME[=VALUE]:_default' \
'-u+[Run the command as USER, with the listed groups]:USER[:GROUP...]:_default' \
'--cmd-user=[Run the command as USER, with the listed groups]:USER[:GROUP...]:_default' \
'-U+[Run the log command as USER, with the listed groups]:USER[:GROUP...]:_default' \
'--log-user=[Run the log command as USER, with the listed groups]:USER[:GROUP...]:_default' \
'-g+[Primary group of the command (with -u)]:GROUP:_default' \
'--cmd-group=[Primary group of the command (with -u)]:GROUP:_default' \
'-G+[Primary group of the log command (with -U)]:GROUP:_default' \
'--log-group=[Primary group of the log command (with -U)]:GROUP:_default' \
'-m+[Start the command again at most N times, then exit with its last status]:N:_default' \
'--max-respawns=[Start the command again at most N times, then exit with its last status]:N:_default' \
'*-r+[Set a resource limit NAME=VALUE for both commands (repeatable; -r help lists them)]:NAME=VALUE:_default' \
'*--limit=[Set a resource limit NAME=VALUE for both commands (repeatable; -r help lists them)]:NAME=VALUE:_default' \
'*--cap=[Keep this capability after dropping to -u/-U'\''s user (repeatable), e.g. NET_BIND_SERVICE]:CAP:_default' \
'--umask=[The file mode creation mask of both commands, in octal (default 022 for -u'\''s and -U'\''s)]:MODE:_default' \
'--grace=[How long a stopped tree gets between TERM and KILL]:TIME:_default' \
'--backoff-max=[The longest wait between restarts of a command that keeps failing]:TIME:_default' \
'--tree=[How to control the command tree\: a cgroup, or signals where none can be had]:BACKEND:((auto\:"cgroup v2 where writable, else the v1 freezer, else signals"
cgroup2\:"A cgroup v2 leaf\: freeze, thaw and cgroup.kill"
freezer\:"A cgroup v1 freezer leaf"
signals\:"Process group, subreaper and a walk of the process tree"))' \
'--cgroup-parent=[Make dmon'\''s cgroups under DIR instead of under dmon'\''s own cgroup]:DIR:_files' \
'*--pressure=[Pause the whole command tree while cpu (the default), memory or io pressure is above HIGH percent, resume once below LOW (default\: half); once per source, also with -L]:[cpu:|memory:|io:]HIGH[:LOW]:_default' \
'--memory-max=[Kill the command'\''s tree (and, apart, the log command'\''s) when its memory use reaches SIZE (one OOM event ends the whole run)]:SIZE:_default' \
'--memory-high=[Throttle the command'\''s tree (and, apart, the log command'\''s) when its memory use is above SIZE (cgroup v2 only)]:SIZE:_default' \
'--pids-max=[Let the command'\''s tree (and, apart, the log command'\''s) have at most N processes and threads]:N:_default' \
'--cpu-quota=[Give the command'\''s tree (and, apart, the log command'\''s) at most PERCENT of one CPU (above 100% for more than one)]:PERCENT:_default' \
'-n[Stay in the foreground, sharing the terminal with the command]' \
'--no-daemon[Stay in the foreground, sharing the terminal with the command]' \
'-1[Stop once the command exits with status 0]' \
'--once[Stop once the command exits with status 0]' \
'-e[Send the command'\''s standard error to the log command too]' \
'--stderr-redir[Send the command'\''s standard error to the log command too]' \
'-s[Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the command]' \
'--cmd-sigs[Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the command]' \
'-S[Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the log command]' \
'--log-sigs[Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the log command]' \
'--no-new-privs[Set no_new_privs for the command and the log command (--cap sets it too)]' \
'(--no-new-privs)--allow-new-privs[With --cap, leave no_new_privs off\: a set-user-ID root program may then regain uid 0]' \
'--clean-env[Start both commands from a clean environment\: TERM, LANG, LANGUAGE, LC_*, TZ, the user'\''s USER, LOGNAME and HOME, a default PATH, and -E]' \
'*-v[Log more about what dmon does (repeat for more; DMON_LOG=debug does the same)]' \
'*--verbose[Log more about what dmon does (repeat for more; DMON_LOG=debug does the same)]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
'*::command -- The command, its arguments, and after a lone -- the log command and its arguments:_default' \
&& ret=0
}

(( $+functions[_dmon_commands] )) ||
_dmon_commands() {
    local commands; commands=()
    _describe -t commands 'dmon commands' commands "$@"
}

if [ "$funcstack[1]" = "_dmon" ]; then
    _dmon "$@"
else
    compdef _dmon dmon
fi
