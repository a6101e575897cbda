// Package lint holds tests about the module's shape rather than its
// behaviour. imports_test.go keeps dependencies pointing down: the allowed
// directions are written once, in its rules table.
package lint
