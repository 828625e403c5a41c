package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// commands and their sub-commands, for completion.
var commands = map[string][]string{
	"serve": nil, "session": {"create", "import", "list", "show", "sdp", "delete"}, "invite": nil,
	"participants": {"remove"}, "media": {"add", "remove", "direction"}, "directory": nil, "watch": nil, "probe": nil, "reception": nil,
	"alloc": nil, "leases": nil, "renew": nil, "release": nil, "pools": nil, "sdp": {"lint", "new"},
	"version": nil, "completion": {"bash", "zsh", "fish"}, "help": nil,
}

func cmdCompletion(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usagef("completion needs a shell: bash, zsh or fish")
	}
	var top []string
	for c := range commands {
		top = append(top, c)
	}
	slices.Sort(top)
	switch args[0] {
	case "bash", "zsh":
		var b strings.Builder
		if args[0] == "zsh" {
			b.WriteString("autoload -U +X bashcompinit && bashcompinit\n")
		}
		b.WriteString("_mcc() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n  if [ $COMP_CWORD -eq 1 ]; then\n")
		fmt.Fprintf(&b, "    COMPREPLY=($(compgen -W %q -- \"$cur\"))\n    return\n  fi\n  case ${COMP_WORDS[1]} in\n", strings.Join(top, " "))
		for _, c := range top {
			if subs := commands[c]; len(subs) > 0 {
				fmt.Fprintf(&b, "    %s) [ $COMP_CWORD -eq 2 ] && COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c, strings.Join(subs, " "))
			}
		}
		b.WriteString("  esac\n}\ncomplete -o default -F _mcc mcc\n")
		_, err := io.WriteString(stdout, b.String())
		return err
	case "fish":
		var b strings.Builder
		fmt.Fprintf(&b, "complete -c mcc -f -n '__fish_use_subcommand' -a %q\n", strings.Join(top, " "))
		for _, c := range top {
			if subs := commands[c]; len(subs) > 0 {
				fmt.Fprintf(&b, "complete -c mcc -f -n '__fish_seen_subcommand_from %s' -a %q\n", c, strings.Join(subs, " "))
			}
		}
		_, err := io.WriteString(stdout, b.String())
		return err
	}
	return usagef("completion %q: want bash, zsh or fish", args[0])
}
