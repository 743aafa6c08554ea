# SPDX-License-Identifier: GPL-2.0-or-later
# bash completion for pcache(8): subcommands, their options, pmem/dax device nodes and files.
#
# Subcommands and options are read from the program itself ('pcache --help' and
# 'pcache CMD --help', once per shell session), so the completion never lags
# behind the commands: an option is an -x or --name word of a usage line or of an
# option line ('  -x, --name ...'), and it takes an argument when an upper-case
# word follows it there (--undo FILE, --gc-percent N, -c COMMANDS).
#
# Install as share/bash-completion/completions/pcache, or source it.

declare -gA _PCACHE_HELP 2>/dev/null || true

# _pcache_help PROG [CMD]: the --help text of pcache or of one of its commands (cached).
_pcache_help() {
	local key="$1|${2-}"
	if [[ -z ${_PCACHE_HELP[$key]+set} ]]; then
		if [[ -n ${2-} ]]; then
			_PCACHE_HELP[$key]=$("$1" "$2" --help 2>/dev/null </dev/null)
		else
			_PCACHE_HELP[$key]=$("$1" --help 2>/dev/null </dev/null)
		fi
	fi
	printf '%s\n' "${_PCACHE_HELP[$key]}"
}

# _pcache_commands PROG: the commands 'pcache --help' lists, one a line.
_pcache_commands() {
	local line on=0
	while IFS= read -r line; do
		if [[ $line == commands:* ]]; then
			on=1
		elif ((on)) && [[ $line =~ ^\ +([a-z][a-z0-9_-]*)(\ |$) ]]; then
			printf '%s\n' "${BASH_REMATCH[1]}"
		elif ((on)) && [[ -z $line ]]; then
			on=0
		fi
	done < <(_pcache_help "$1")
}

# _pcache_option_lines PROG CMD: the usage lines (up to the first blank line) and the
# option lines of 'pcache CMD --help'.
_pcache_option_lines() {
	local line usage=1
	while IFS= read -r line; do
		if ((usage)); then
			[[ -z $line ]] && usage=0 && continue
			printf '%s\n' "$line"
		elif [[ $line =~ ^[[:space:]]+- ]]; then
			printf '%s\n' "$line"
		fi
	done < <(_pcache_help "$1" "$2")
}

# _pcache_options PROG CMD: every option of CMD, one a line.
_pcache_options() {
	local line rest
	{
		while IFS= read -r line; do
			rest=$line
			while [[ $rest =~ (^|[^A-Za-z0-9-])(--?[A-Za-z][A-Za-z0-9-]*)(.*)$ ]]; do
				printf '%s\n' "${BASH_REMATCH[2]}"
				rest=${BASH_REMATCH[3]}
			done
		done < <(_pcache_option_lines "$1" "$2")
		printf '%s\n' --help
	} | sort -u
}

# _pcache_arg_of PROG CMD OPT: the argument name OPT takes (FILE, N, ...), or nothing.
_pcache_arg_of() {
	local line rest
	while IFS= read -r line; do
		# '-c, --command CMDS': the short form takes the argument too
		if [[ $line =~ ^[[:space:]]+(-[A-Za-z]),\ (--[A-Za-z0-9-]+)[\ =]([A-Z][A-Z_]*)([^A-Za-z]|$) ]] &&
			[[ $3 == "${BASH_REMATCH[1]}" || $3 == "${BASH_REMATCH[2]}" ]]; then
			printf '%s\n' "${BASH_REMATCH[3]}"
			return
		fi
		rest=$line
		while [[ $rest =~ (^|[^A-Za-z0-9-])(--?[A-Za-z][A-Za-z0-9-]*)[\ =]([A-Z][A-Z_]*)([^A-Za-z].*)?$ ]]; do
			if [[ ${BASH_REMATCH[2]} == "$3" ]]; then
				printf '%s\n' "${BASH_REMATCH[3]}"
				return
			fi
			rest=${BASH_REMATCH[4]}
		done
	done < <(_pcache_option_lines "$1" "$2")
}

# _pcache_add CMD...: appends the lines CMD prints to COMPREPLY (names with blanks kept whole).
_pcache_add() {
	local line
	while IFS= read -r line; do
		COMPREPLY+=("$line")
	done < <("$@")
}

# Device nodes a cache can live on, and files (images, backing files, undo files).
_pcache_devices_and_files() {
	local cur=$1 d
	local -a devs=()
	for d in /dev/pmem* /dev/dax*; do
		[[ -e $d ]] && devs+=("$d")
	done
	compopt -o filenames 2>/dev/null
	_pcache_add compgen -W "${devs[*]}" -- "$cur"
	_pcache_add compgen -f -- "$cur"
}

_pcache() {
	local cur prev prog cmd arg
	local -a words=("${COMP_WORDS[@]}")
	local cword=$COMP_CWORD
	COMPREPLY=()
	cur=${words[cword]}
	prev=${words[cword - 1]}
	prog=${words[0]}
	prog=${prog/#\~/$HOME}
	command -v "$prog" >/dev/null 2>&1 || prog=pcache

	# --opt=value: bash splits it into '--opt' '=' 'value'
	if [[ $cur == = ]]; then
		prev=${words[cword - 1]}
		cur=
	elif [[ $prev == = ]] && ((cword >= 2)); then
		prev=${words[cword - 2]}
	fi

	if ((cword == 1)); then
		_pcache_add compgen -W "$(_pcache_commands "$prog") --help --version" -- "$cur"
		return 0
	fi
	cmd=${words[1]}
	case $cmd in
	-*) return 0 ;;
	help)
		((cword == 2)) && _pcache_add compgen -W "$(_pcache_commands "$prog")" -- "$cur"
		return 0
		;;
	esac

	if [[ $prev == -* ]]; then
		arg=$(_pcache_arg_of "$prog" "$cmd" "$prev")
		case $arg in
		"") ;;
		FILE | PATH | DEV | BACKING)
			_pcache_devices_and_files "$cur"
			return 0
			;;
		LIST)
			if [[ $prev == --what ]]; then
				local pre=
				[[ $cur == *,* ]] && pre=${cur%,*},
				_pcache_add compgen -P "$pre" -W "sb cache-info cache-ctrl segments ksets keys" -- "${cur##*,}"
				compopt -o nospace 2>/dev/null
			fi
			return 0
			;;
		*) return 0 ;;
		esac
	fi

	if [[ $cur == -* ]]; then
		_pcache_add compgen -W "$(_pcache_options "$prog" "$cmd")" -- "$cur"
		return 0
	fi
	_pcache_devices_and_files "$cur"
	return 0
}

complete -F _pcache pcache
