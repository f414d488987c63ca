# SAM build targets, included by the root Makefile.
#
# template.yaml gives both functions `BuildMethod: makefile` with `ProjectRootDirectory: .`
# and `ContextPath: .`, so `sam build` runs
#   make --makefile <project root>/Makefile build-<LogicalId>
# with ARTIFACTS_DIR set to the function's folder under .aws-sam/build/. The working
# directory is the project root when samconfig.toml's `build_in_source = true` applies,
# and otherwise a scratch copy of it: recipes use paths relative to the working directory.
#
# The layer (TollwayLayer) is built by SAM itself from layers/tollway/requirements.txt.

# Targets here must not become the including Makefile's default goal.
build_mk_default_goal := $(.DEFAULT_GOAL)

# The SAM CLI sends usage telemetry unless told not to.
export SAM_CLI_TELEMETRY ?= 0

UV ?= uv
# Fails the build on invalid infra config, before anything is packaged; then compiles the
# route table of every stage into the function's copy of infra/ (tollway/config/artifact.py),
# which the function loads at init instead of parsing and validating the YAML.
ROUTES_CHECK ?= $(UV) run --frozen tollway routes check --infra infra

LAYER_REQUIREMENTS := layers/tollway/requirements.txt
UV_EXPORT = $(UV) export --frozen --no-dev --no-emit-project --no-hashes --no-header \
	--format requirements-txt

# $(1): the folder under functions/. The config travels with the function so that it is
# found at $LAMBDA_TASK_ROOT/infra.
define build-function
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run this target through sam build" >&2; exit 2; }
	cp functions/$(1)/*.py "$(ARTIFACTS_DIR)/"
	rm -rf "$(ARTIFACTS_DIR)/infra"
	cp -R infra "$(ARTIFACTS_DIR)/infra"
	$(ROUTES_CHECK) --write-table "$(ARTIFACTS_DIR)/infra"
endef

.PHONY: build-RouterFunction build-UsageFunction build-UsageTrueUpFunction build-StripePushFunction \
	build-PreTrafficHookFunction layer-requirements \
	check-layer-requirements

build-RouterFunction:
	$(call build-function,router)

build-UsageFunction:
	$(call build-function,usage)

# The usage true-up (tollway/usage/trueup.py): the usage function's folder, another handler.
build-UsageTrueUpFunction:
	$(call build-function,usage)

# The optional StripePushFunction carries the `stripe` package and its dependencies itself
# (pyproject.toml's `stripe` dependency group, pinned by uv.lock), as arm64 wheels for the
# Lambda runtime: neither the shared layer nor the router loads them.
STRIPE_REQUIREMENTS = $(UV) export --frozen --only-group stripe --no-emit-project --no-hashes --no-header \
	--format requirements-txt
build-StripePushFunction:
	$(call build-function,stripe_push)
	$(STRIPE_REQUIREMENTS) --quiet -o "$(ARTIFACTS_DIR)/requirements-stripe.txt"
	$(UV) pip install --quiet --no-deps --only-binary :all: --python-version 3.13 \
		--python-platform aarch64-manylinux2014 --target "$(ARTIFACTS_DIR)" \
		-r "$(ARTIFACTS_DIR)/requirements-stripe.txt"
	rm "$(ARTIFACTS_DIR)/requirements-stripe.txt"

# The pre-traffic hook carries the same route table as the router it checks.
build-PreTrafficHookFunction:
	$(call build-function,hook)

layer-requirements:
	$(UV_EXPORT) -o $(LAYER_REQUIREMENTS)

check-layer-requirements:
	@tmp=$$(mktemp) || exit 1; trap 'rm -f "$$tmp"' EXIT; \
	$(UV_EXPORT) --quiet -o "$$tmp" || exit 1; \
	diff -u $(LAYER_REQUIREMENTS) "$$tmp" || { \
		echo "$(LAYER_REQUIREMENTS) is out of date with uv.lock: run 'make layer-requirements'" >&2; \
		exit 1; }

.DEFAULT_GOAL := $(build_mk_default_goal)
