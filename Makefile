# Quick start: `make demo` runs the demo, `make test` runs every test. Both set up what they need.
.PHONY: setup build demo test typecheck bench

setup:
	@scripts/setup.sh

build:
	@npm run --silent build

demo: setup
	@node scripts/demo.mjs

typecheck:
	@npx tsc --noEmit -p tsconfig.json

test: setup typecheck
	@npm test

bench: setup
	@node bench/cni-latency.mjs
