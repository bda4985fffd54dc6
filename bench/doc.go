// Package bench compares gild's Azure Policy engine (package policy) with Open Policy Agent
// on the same work, so that the ratio between the two is measured in one run on one machine
// rather than quoted from elsewhere.
//
// It is a separate Go module, with its own go.mod, so that the product never depends on
// OPA: the root module's ./... does not reach into it, and OPA is required only here.
//
// What is compared: the three typical VM rules of policy/eval_bench_test.go (allowed image
// publishers, allowed locations, a required tag), written once in Azure Policy JSON and
// evaluated by gild, and once in idiomatic Rego v1 and evaluated by OPA
// (github.com/open-policy-agent/opa/v1/rego). Both sides are compiled and bound to their
// parameter values once (gild: ParseDefinition, Compile, Prepare; OPA: the parameters as
// data in an in-memory store, rego.New(...).PrepareForEval), and then evaluate resources
// that are already decoded Go maps (gild: (*Prepared).Eval; OPA: pq.Eval with
// rego.EvalInput), round-robin over a corpus of 1,000 VM variants built once, some
// compliant and some not with each rule. TestSameDecisions checks that both engines decide
// every VM of the corpus identically for every rule, so that the benchmarks time equal
// work.
//
// Benchmarks:
//
//   - BenchmarkGild/<rule> and BenchmarkOPA/<rule>: one evaluation per op, each engine alone.
//   - BenchmarkBoth/<rule>: both engines in one benchmark, interleaved in blocks so that they
//     see the same machine conditions; it reports gild-ns/eval, opa-ns/eval and the ratio
//     opa/gild as custom metrics (its ns/op is the sum of one evaluation by each).
//
// To run them:
//
//	cd bench && go test -run '^$' -bench . -benchmem
//
// and `go test` alone runs TestSameDecisions.
package bench
