// Package deploy tests the Prometheus rules in deploy/prometheus: they
// pass Debian's `promtool check rules` and the unit tests in
// walprobe.rules.test.yml (`promtool test rules`), every alert carries a
// runbook pointing at this repository's docs, and the Kubernetes
// PrometheusRule in deploy/k8s carries the same groups. It needs no
// PostgreSQL server; it does need promtool (apt-get install -y prometheus).
package deploy
