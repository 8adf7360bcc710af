# `make test` is the project's test command (README quick start, .ci/run).
# It installs the test identity providers' npm packages from their
# lockfiles when they are missing (without npm their tests report
# themselves skipped), then runs the workspace's tests with a throw-away
# PostgreSQL, and the test binaries that start servers (API, OAuth, CLI,
# cluster) a second time with every server in Elasticsearch's invalidation
# mode (`token_invalidation = "token"`, through
# TESSERA_TEST_TOKEN_INVALIDATION; about as long as their first run).
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
		echo "== the tests that start servers again, token_invalidation = token" && \
		TESSERA_TEST_TOKEN_INVALIDATION=token cargo test -p tessera --test api --test oauth --test cli --test cluster'
