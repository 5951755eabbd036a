#compdef dsyslog

autoload -U is-at-least

_dsyslog() {
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
'-p+[Priority\: emerg, alert, crit, err, warning, notice, info, debug (any case)]:PRIORITY:_default' \
'--priority=[Priority\: emerg, alert, crit, err, warning, notice, info, debug (any case)]:PRIORITY:_default' \
'-f+[Facility\: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7]:FACILITY:_default' \
'--facility=[Facility\: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7]:FACILITY:_default' \
'-i+[Read from descriptor FD instead of standard input]:FD:_default' \
'--input-fd=[Read from descriptor FD instead of standard input]:FD:_default' \
'--max-line=[Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "]:SIZE:_default' \
'--socket=[The system log socket]:PATH:_files' \
'--console-device=[The console device for -c]:PATH:_files' \
'--max-message=[Send a longer line as consecutive messages of at most SIZE bytes]:SIZE:_default' \
'-c[Write to the console when the system log cannot be reached]' \
'--console[Write to the console when the system log cannot be reached]' \
'-e[Skip empty lines]' \
'--skip-empty[Skip empty lines]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':name -- The name messages are logged under:_default' \
&& ret=0
}

(( $+functions[_dsyslog_commands] )) ||
_dsyslog_commands() {
    local commands; commands=()
    _describe -t commands 'dsyslog commands' commands "$@"
}

if [ "$funcstack[1]" = "_dsyslog" ]; then
    _dsyslog "$@"
else
    compdef _dsyslog dsyslog
fi
