#compdef denv

autoload -U is-at-least

_denv() {
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
'*-i+[Inherit the variable NAME (when it is set)]:NAME:_default' \
'*--inherit=[Inherit the variable NAME (when it is set)]:NAME:_default' \
'*-E+[Set NAME to VALUE, or remove NAME when no =VALUE is given]:NAME[=VALUE]:_default' \
'*--environ=[Set NAME to VALUE, or remove NAME when no =VALUE is given]:NAME[=VALUE]:_default' \
'*-d+[Read variables from the envdir DIR (one per regular file)]:DIR:_files' \
'*--envdir=[Read variables from the envdir DIR (one per regular file)]:DIR:_files' \
'*-f+[Read NAME=VALUE lines from FILE (# starts a comment line)]:FILE:_files' \
'*--file=[Read NAME=VALUE lines from FILE (# starts a comment line)]:FILE:_files' \
'*-I[Inherit every variable of denv'\''s own environment]' \
'*--inherit-env[Inherit every variable of denv'\''s own environment]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
'*::command -- The command and its arguments:_default' \
&& ret=0
}

(( $+functions[_denv_commands] )) ||
_denv_commands() {
    local commands; commands=()
    _describe -t commands 'denv commands' commands "$@"
}

if [ "$funcstack[1]" = "_denv" ]; then
    _denv "$@"
else
    compdef _denv denv
fi
