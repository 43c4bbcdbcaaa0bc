package webui

import (
	"net/netip"
	"strings"
	"unicode"

	"github.com/returnpath/returnpath/internal/fabric"
)

// line is one line of a device's native text, split into classed tokens for the stylesheet.
type line []token

// token is a run of text and its class: "kw" a keyword of the platform's syntax, "pfx" a
// prefix, "addr" an address, "num" a number, "" anything else (spaces included). The text is
// escaped by html/template like any other.
type token struct {
	Class string
	Text  string
}

// keywords are each platform family's command words.
var keywords = map[fabric.Platform][]string{
	fabric.PlatformFRR:          {"ip", "ipv6", "route", "no", "vrf", "configure", "terminal", "end", "exit", "distance"},
	fabric.PlatformCiscoIOSXE:   {"ip", "ipv6", "route", "no", "vrf", "configure", "terminal", "end", "exit"},
	fabric.PlatformCiscoNXOS:    {"ip", "ipv6", "route", "no", "vrf", "context", "configure", "terminal", "end", "exit"},
	fabric.PlatformCiscoASA:     {"route", "no", "configure", "terminal", "end", "exit"},
	fabric.PlatformAristaEOS:    {"ip", "ipv6", "route", "no", "vrf", "configure", "session", "commit", "end", "exit"},
	fabric.PlatformLinux:        {"ip", "-6", "route", "add", "del", "replace", "via", "proto", "table", "vrf", "sudo"},
	fabric.PlatformJuniperJunos: {"set", "delete", "routing-options", "routing-instances", "static", "route", "next-hop", "commit", "configure", "private", "instance"},
	fabric.PlatformVyOS:         {"set", "delete", "protocols", "static", "route", "next-hop", "vrf", "name", "commit", "configure", "save"},
	fabric.PlatformPANOS:        {"set", "delete", "network", "virtual-router", "routing-table", "ip", "static-route", "destination", "nexthop", "ip-address", "interface", "commit", "configure"},
	fabric.PlatformFortiOS:      {"config", "router", "static", "edit", "set", "dst", "gateway", "device", "next", "end", "delete", "vdom"},
}

// highlight splits text into lines of classed tokens: per-platform keywords, prefixes and
// addresses. Text from a platform without a keyword list (gNMI paths and JSON) still has its
// prefixes and addresses marked.
func highlight(p fabric.Platform, text string) []line {
	if text == "" {
		return nil
	}
	kw := map[string]bool{}
	for _, k := range keywords[p] {
		kw[k] = true
	}
	var out []line
	for _, l := range strings.Split(text, "\n") {
		var ln line
		for len(l) > 0 {
			i := strings.IndexFunc(l, isSep)
			if i == 0 {
				j := strings.IndexFunc(l, func(r rune) bool { return !isSep(r) })
				if j < 0 {
					j = len(l)
				}
				ln = append(ln, token{Text: l[:j]})
				l = l[j:]
				continue
			}
			if i < 0 {
				i = len(l)
			}
			word := l[:i]
			ln = append(ln, token{Class: classify(word, kw), Text: word})
			l = l[i:]
		}
		out = append(out, ln)
	}
	return out
}

// isSep separates words: spaces and the punctuation of JSON and gNMI paths (but not the dots,
// colons and slashes inside addresses and prefixes).
func isSep(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune(`"{}[],=`, r)
}

func classify(word string, kw map[string]bool) string {
	switch {
	case kw[word]:
		return "kw"
	case strings.Contains(word, "/"):
		if _, err := netip.ParsePrefix(word); err == nil {
			return "pfx"
		}
	case strings.ContainsAny(word, ".:"):
		if _, err := netip.ParseAddr(word); err == nil {
			return "addr"
		}
	case strings.IndexFunc(word, func(r rune) bool { return r < '0' || r > '9' }) < 0:
		return "num"
	}
	return ""
}
