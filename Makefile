bench:
	mkdir -p bench/results
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/ | tee bench/results/latest.txt
