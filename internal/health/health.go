// Package health evaluates health rules: CEL expressions
// (github.com/google/cel-go) that say when an object of one apiVersion and
// kind is current, in progress or failed. They are for the custom
// resources of operators (a Certificate, a Kafka, a database) that report
// their health in fields of their own, where kstatus, which reads standard
// conditions, sees no status and calls them Current at once.
//
// A rule's expressions see the object's top-level fields as variables
// (apiVersion, kind, metadata, spec, status; the last three are empty maps
// when the object has none) and the whole object as self. They are
// evaluated in the order inProgress, failed, current; the first that holds
// gives the status, and when none holds the object is InProgress. A field
// an expression reads that the object does not have ("no such key") makes
// that expression not hold yet; any other evaluation error makes the
// status Unknown, with the error. CEL's has() and optional fields
// (status.?phase.orValue("")) test for a field without an error.
package health

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Statuses a rule gives, as kstatus spells them.
const (
	Current    = "Current"
	InProgress = "InProgress"
	Failed     = "Failed"
	Unknown    = "Unknown"
)

// costLimit bounds the work of one evaluation (CEL's cost units: about one
// per field read or comparison), so that a rule over a large list cannot
// stall a wait.
const costLimit = 1_000_000

// Rule is one health rule as written: the objects it is for, its three
// expressions (Current required) and where it is written, for messages.
type Rule struct {
	APIVersion string // group/version, or v1 for the core group
	Kind       string
	Current    string
	InProgress string // optional
	Failed     string // optional
	Source     string // file:line of the rule
}

// key is the apiVersion and kind a rule is for.
func key(apiVersion, kind string) string { return apiVersion + "|" + kind }

// Rules are compiled rules by apiVersion and kind. The nil *Rules has
// none: Status handles nothing.
type Rules struct {
	byKind map[string]*compiled
}

type compiled struct {
	source string
	exprs  []expr // in evaluation order: inProgress, failed, current
}

type expr struct {
	field  string // inProgress, failed, current
	status string // what the object is when it holds
	text   string
	prg    cel.Program
}

// variables are the names an expression sees besides self.
var variables = []string{"apiVersion", "kind", "metadata", "spec", "status"}

var env = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{cel.OptionalTypes(), ext.Strings(), ext.Lists(), cel.Variable("self", cel.DynType)}
	for _, v := range variables {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	return cel.NewEnv(opts...)
})

// Check compiles one expression; the error says what is wrong with it (a
// syntax error, an unknown variable or function, a result that is not a
// bool).
func Check(text string) error {
	_, err := program(text)
	return err
}

// programs are compiled expressions by text: a sync compiles the rules of
// every release, mostly the same few. A program is safe for concurrent
// use.
var programs = struct {
	sync.Mutex
	m map[string]cel.Program
}{m: map[string]cel.Program{}}

// maxPrograms bounds programs; when full it starts over.
const maxPrograms = 4096

func program(text string) (cel.Program, error) {
	programs.Lock()
	prg, ok := programs.m[text]
	programs.Unlock()
	if ok {
		return prg, nil
	}
	prg, err := compile(text)
	if err != nil {
		return nil, err
	}
	programs.Lock()
	if len(programs.m) >= maxPrograms {
		clear(programs.m)
	}
	programs.m[text] = prg
	programs.Unlock()
	return prg, nil
}

func compile(text string) (cel.Program, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty expression")
	}
	e, err := env()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(text)
	if iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, strings.TrimSuffix(e.Message, " (in container '')")))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("the expression gives %s, not a bool", t)
	}
	return e.Program(ast, cel.CostLimit(costLimit))
}

// Compile compiles rules. A later rule for the same apiVersion and kind
// replaces an earlier one: give a cluster's rules first, then a
// release's. The error names the rule's source and expression.
func Compile(rules []Rule) (*Rules, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	out := &Rules{byKind: map[string]*compiled{}}
	for _, r := range rules {
		if r.APIVersion == "" || r.Kind == "" {
			return nil, fmt.Errorf("health rule %s: apiVersion and kind are required", r.Source)
		}
		if r.Current == "" {
			return nil, fmt.Errorf("health rule %s for %s %s: current is required", r.Source, r.APIVersion, r.Kind)
		}
		c := &compiled{source: r.Source}
		for _, x := range []struct{ field, status, text string }{
			{"inProgress", InProgress, r.InProgress},
			{"failed", Failed, r.Failed},
			{"current", Current, r.Current},
		} {
			if x.text == "" {
				continue
			}
			prg, err := program(x.text)
			if err != nil {
				return nil, fmt.Errorf("health rule %s for %s %s: %s: %w", r.Source, r.APIVersion, r.Kind, x.field, err)
			}
			c.exprs = append(c.exprs, expr{field: x.field, status: x.status, text: x.text, prg: prg})
		}
		out.byKind[key(r.APIVersion, r.Kind)] = c
	}
	return out, nil
}

// Len is how many kinds have a rule.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byKind)
}

// Has reports whether a rule is for objects of apiVersion and kind.
func (r *Rules) Has(apiVersion, kind string) bool {
	if r == nil {
		return false
	}
	_, ok := r.byKind[key(apiVersion, kind)]
	return ok
}

// Status evaluates the rule for live's apiVersion and kind. handled is
// false when there is none, or when the object is being deleted (kstatus
// calls it Terminating); then status and message are empty.
func (r *Rules) Status(live *unstructured.Unstructured) (status, message string, handled bool) {
	if r == nil || live == nil {
		return "", "", false
	}
	c, ok := r.byKind[key(live.GetAPIVersion(), live.GetKind())]
	if !ok || live.GetDeletionTimestamp() != nil {
		return "", "", false
	}
	vars := map[string]any{"self": live.Object}
	for _, v := range variables {
		val, ok := live.Object[v]
		if !ok || val == nil {
			switch v {
			case "metadata", "spec", "status":
				val = map[string]any{}
			default:
				val = ""
			}
		}
		vars[v] = val
	}
	var missing []string
	var current string
	for _, x := range c.exprs {
		if x.field == "current" {
			current = x.text
		}
		out, _, err := x.prg.Eval(vars)
		if err != nil {
			if isMissing(err) {
				missing = append(missing, x.field+": "+err.Error())
				continue
			}
			return Unknown, fmt.Sprintf("health rule %s: %s: %v", c.source, x.field, err), true
		}
		b, isBool := out.Value().(bool)
		if !isBool {
			return Unknown, fmt.Sprintf("health rule %s: %s gives %v, not a bool", c.source, x.field, out.Value()), true
		}
		if b {
			return x.status, fmt.Sprintf("health rule %s: %s holds: %s", c.source, x.field, x.text), true
		}
	}
	msg := fmt.Sprintf("health rule %s: waiting for current: %s", c.source, current)
	if len(missing) > 0 {
		msg += " (" + strings.Join(missing, "; ") + ")"
	}
	return InProgress, msg, true
}

// isMissing reports whether an evaluation error is a field the object does
// not have (yet).
func isMissing(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "no such key") || strings.HasPrefix(s, "no such attribute")
}
