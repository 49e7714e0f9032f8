# overlay.gre: `make demo` shows the collection at work in the lab; `make test` runs every test.
# Both install what they need first (OS packages through apt, the Python virtualenv .venv).
.PHONY: all demo test bootstrap sanity lint pytest lab-shell bench clean

all: test

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	@lab/run --results tests/output/lab-demo -- scripts/demo

test: bootstrap
	@scripts/test-all

sanity: bootstrap
	@scripts/test-all sanity sanity-core218 lint changelog build

pytest: bootstrap
	@scripts/test-all pytest-host vm pytest-lab

bench: bootstrap
	@bench/run-all

clean:
	rm -rf tests/output bench/output .pytest_cache
