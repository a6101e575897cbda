.PHONY: test unit demo build bench fuzz

# The test command README.md documents and .ci/run calls.
test:
	bash .ci/install-deps
	bash .ci/build-receivers
	go test -race -count=1 -timeout 25m ./...

# Every test that needs no PostgreSQL, in well under 30 s. A test file that
# starts a server (it imports one of UNIT_HARNESS) carries `//go:build !unit`
# when its package has other tests; a package whose tests still import the
# harness under -tags unit (test/e2e, test/faults, ...) is left out whole.
# Nothing skips: the left-out tests are not compiled, and `make test` runs them.
UNIT_HARNESS = walprobe/test/cluster walprobe/test/inproc walprobe/cmd/localcluster toxiproxy
UNIT_PKGS = $(shell go list -tags unit -f '{{.ImportPath}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}' ./... \
	| grep -v $(foreach h,$(UNIT_HARNESS),-e '$(h)') | cut -d' ' -f1)
unit:
	go test -tags unit -count=1 $(UNIT_PKGS)

# Installs only the PostgreSQL 15 server and pgbouncer when missing, then
# runs the demo (cmd/walprobe/deps_test.go keeps it to those two).
demo:
	bash .ci/install-deps demo
	go run ./cmd/walprobe demo

build:
	go build -o bin/walprobe ./cmd/walprobe

bench:
	mkdir -p bench/results
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/ | tee bench/results/latest.txt

# Random fuzzing, outside the CI gate: FUZZTIME per target (default 30s).
# A failure leaves its input in the package's testdata/fuzz/<Target>/:
# fix the root cause and commit the input so `make test` replays it.
FUZZTIME ?= 30s
FUZZ_TARGETS = ./heartbeat/pgconf:FuzzParseDSN ./cmd/walprobe:FuzzConfigYAML
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done
