# `make test` is the project's test command (README quick start, .ci/run).
.PHONY: test
test:
	bash .ci/with-postgres.sh cargo test --workspace
