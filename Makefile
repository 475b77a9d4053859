# The two commands: `make demo` and `make test`. Both install what they need.
.PHONY: demo test bench setup lint clean test-infra

demo:
	dev/demo.sh

# The tests build the worker with fault points (fail-rs, inert unless FAILPOINTS is set).
# The integration tests build the binaries too (target/debug), so test-infra runs those
# rather than building them again under another profile.
TEST_FEATURES = auto-lambda-worker/failpoints

test: setup
	if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --no-fail-fast --features $(TEST_FEATURES); \
	else \
	  cargo test --workspace --no-fail-fast --features $(TEST_FEATURES); \
	fi
	SKIP_CARGO_BUILD=1 $(MAKE) test-infra

# infra/ and ami/: shellcheck, terraform fmt/validate/apply/destroy against moto, the real
# binaries configured from the launch templates, systemd-analyze verify, packer validate.
test-infra:
	dev/test-infra.sh

# Benchmarks (never part of `make test`): figures, baselines and a table. dev/bench.sh does its
# own set-up while the release build runs.
bench:
	dev/bench.sh

setup:
	dev/setup.sh
	dev/build-image.sh python3.13 python3.11 nodejs20.x

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

clean:
	rm -rf .dev target
