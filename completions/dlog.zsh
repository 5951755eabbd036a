#compdef dlog

autoload -U is-at-least

_dlog() {
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
'-i+[Read from descriptor FD instead of standard input]:FD:_default' \
'--input-fd=[Read from descriptor FD instead of standard input]:FD:_default' \
'--max-line=[Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "]:SIZE:_default' \
'-p+[Put PREFIX and a space in front of each line (after the timestamp)]:PREFIX:_default' \
'--prefix=[Put PREFIX and a space in front of each line (after the timestamp)]:PREFIX:_default' \
'-b[Buffered\: do not sync to disk after each batch (the log is still synced before it is closed)]' \
'--buffered[Buffered\: do not sync to disk after each batch (the log is still synced before it is closed)]' \
'-t[Put a UTC timestamp YYYY-mm-dd/HH\:MM\:SS in front of each line]' \
'--timestamp[Put a UTC timestamp YYYY-mm-dd/HH\:MM\:SS in front of each line]' \
'-R[Put an RFC 3339 UTC timestamp with microseconds in front of each line]' \
'--rfc3339[Put an RFC 3339 UTC timestamp with microseconds in front of each line]' \
'-e[Skip empty lines]' \
'--skip-empty[Skip empty lines]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
'::file -- The file to append to (created when missing, never through a link); standard output without it:_files' \
&& ret=0
}

(( $+functions[_dlog_commands] )) ||
_dlog_commands() {
    local commands; commands=()
    _describe -t commands 'dlog commands' commands "$@"
}

if [ "$funcstack[1]" = "_dlog" ]; then
    _dlog "$@"
else
    compdef _dlog dlog
fi
