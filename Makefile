.PHONY: test demo build bench

# The test command README.md documents and .ci/run calls.
test:
	bash .ci/install-deps
	bash .ci/build-receivers
	go test -race -count=1 -timeout 25m ./...

# Installs the PostgreSQL server and pgbouncer when missing, then runs the demo.
demo:
	bash .ci/install-deps
	go run ./cmd/walprobe demo

build:
	go build -o bin/walprobe ./cmd/walprobe

bench:
	mkdir -p bench/results
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/ | tee bench/results/latest.txt
