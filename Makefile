# `make test` is the project's test command (README quick start, .ci/run).
# It installs the test identity providers' npm packages from their
# lockfiles when they are missing (without npm their tests report
# themselves skipped), then runs the workspace's tests with a throw-away
# PostgreSQL, and the API and OAuth test binaries a second time with every
# server in Elasticsearch's invalidation mode (`token_invalidation =
# "token"`, through TESSERA_TEST_TOKEN_INVALIDATION; about as long as their
# first run). The cluster tests take the same variable (and check each
# mode's answers) but are not run twice: they take minutes.
IDPS := tests/idp/saml tests/idp/oidc

.PHONY: test
test:
	@for d in $(IDPS); do \
		if [ ! -d $$d/node_modules ]; then \
			(cd $$d && npm ci --no-audit --no-fund) \
				|| echo "make: npm ci failed in $$d; its tests will report themselves skipped" >&2; \
		fi; \
	done
	bash .ci/with-postgres.sh sh -c '\
		cargo test --workspace && \
		echo "== the API and OAuth tests again, token_invalidation = token" && \
		TESSERA_TEST_TOKEN_INVALIDATION=token cargo test -p tessera --test api --test oauth'
