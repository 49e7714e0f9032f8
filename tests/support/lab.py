# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tests share: namespaces they own, running modules through Ansible or directly, reading the kernel."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(ROOT, "tests", "output")
COLLECTIONS = os.path.join(OUTPUT, "collections")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")

sys.path.insert(0, os.path.join(ROOT, "lab"))


def ensure_collection_path():
    """Make the checkout importable as ansible_collections.overlay.gre and return the collections path."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "overlay", "gre")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        tmp = link + ".%d" % os.getpid()
        os.symlink(ROOT, tmp)
        os.replace(tmp, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return COLLECTIONS


def ansible_env(results_file=None, **extra):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=ensure_collection_path(),
        # reads a pipelined module from stdin in one go: much faster in the lab (see lab/python-stdin)
        ANSIBLE_PYTHON_INTERPRETER=os.path.join(ROOT, "lab", "python-stdin"),
        LAB_PYTHON=sys.executable,
        ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
        ANSIBLE_STDOUT_CALLBACK="record_results",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOCAL_TEMP=os.path.join(tempfile.gettempdir(), "overlay-gre-ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=os.path.join(tempfile.gettempdir(), "overlay-gre-ansible-tmp"),
    )
    if results_file:
        env["OVERLAY_GRE_RESULTS_FILE"] = results_file
    env.update(extra)
    return env


class AnsibleRun:
    """The outcome of one ansible or ansible-playbook run: exit code, output and every task result."""

    def __init__(self, returncode, stdout, stderr, results):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.results = results

    def for_host(self, host):
        return [r for r in self.results if r["host"] == host]

    def task(self, name, host=None):
        found = [r for r in self.results if r["task"] == name and (host is None or r["host"] == host)]
        assert found, "no result for task %r (host %r) in:\n%s" % (name, host, self.stdout)
        return found[-1]["result"]

    @property
    def output(self):
        return self.stdout + self.stderr


def run_ansible(argv, env_extra=None, cwd=ROOT):
    """Run an ansible CLI (argv[0] is 'ansible' or 'ansible-playbook') and collect every task result."""
    fd, results_file = tempfile.mkstemp(prefix="results-", suffix=".jsonl", dir=_output_dir())
    os.close(fd)
    try:
        bindir = os.path.dirname(sys.executable)
        cmd = [os.path.join(bindir, argv[0])] + list(argv[1:])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd,
                              env=ansible_env(results_file, **(env_extra or {})), check=False)
        with open(results_file, encoding="utf-8") as handle:
            results = [json.loads(line) for line in handle if line.strip()]
    finally:
        os.unlink(results_file)
    return AnsibleRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(netns, module, args, check=False, diff=False, env_extra=None):
    """Run one module through Ansible (ad hoc, overlay.gre.netns connection) on namespace NETNS.

    Returns the module's result dict, with 'failed' set when it failed.
    """
    argv = ["ansible", "all", "-i", "%s," % netns, "-c", "overlay.gre.netns", "-m", module, "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    run = run_ansible(argv, env_extra=env_extra)
    assert run.results, "ansible ran no task (exit %d):\n%s" % (run.returncode, run.output)
    return run.results[-1]["result"]


def run_playbook(playbook, inventory, check=False, diff=False, extra_vars=None, env_extra=None, cwd=ROOT):
    argv = ["ansible-playbook", "-i", inventory, playbook]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    return run_ansible(argv, env_extra=env_extra, cwd=cwd)


def howto_inventory(tmp_path, topo, changes=None):
    """The example inventory's host_vars (CHANGES applied: {host: {variable: value}}, and "extra_hosts") for the
    routers of TOPO (the how-to's topology), reached as its namespaces; returns the hosts file's path."""
    changes = changes or {}
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    for host in ("router_a", "router_b"):
        with open(os.path.join(ROOT, "inventories", "example", "host_vars", host + ".yml"), encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        data.update(changes.get(host, {}))
        (host_vars / (host + ".yml")).write_text(yaml.safe_dump(data))
    hosts = {"all": {"vars": {"ansible_connection": "overlay.gre.netns"},
                     "children": {"gre_routers": {"hosts": {h: {"ansible_host": topo.ns(h)} for h in ("router_a", "router_b")}}}}}
    for name, extra in changes.get("extra_hosts", {}).items():
        hosts["all"]["children"]["gre_routers"]["hosts"][name] = extra
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return str(tmp_path / "hosts.yml")


def _output_dir():
    os.makedirs(OUTPUT, exist_ok=True)
    return OUTPUT


# --- namespaces --------------------------------------------------------------------------------------------

_counter = itertools.count()
CLONE_NEWNET = 0x40000000


def new_netns_name(tag="t"):
    return "ogt%d%s%d" % (os.getpid() % 100000, tag, next(_counter))


def netns_add(name):
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
    return name


def netns_del(name):
    if os.path.exists(os.path.join("/run/netns", name)):
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def sh(netns, command, check=True):
    """Run a shell command inside NETNS; returns CompletedProcess (text)."""
    proc = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", command],
                          capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("in %s, `%s` failed (%d): %s%s" % (netns, command, proc.returncode, proc.stdout, proc.stderr))
    return proc


def ip_json(netns, *args):
    """`ip -j ARGS` inside NETNS, parsed."""
    out = subprocess.run(["ip", "-n", netns, "-j"] + list(args), capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def ping(netns, address, count=1, wait=2):
    return subprocess.run(["ip", "netns", "exec", netns, "ping", "-n", "-c", str(count), "-W", str(wait), address],
                          capture_output=True, text=True, check=False).returncode == 0


def _setns(name):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


def in_child(netns, work):
    """Call WORK() in a forked child that entered NETNS, and return the text it returns (the child's only output)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            _setns(netns)
            os.write(write_fd, work().encode())
        except BaseException as exc:  # pylint: disable=broad-except
            os.write(write_fd, json.dumps({"failed": True, "msg": "test harness: %r" % (exc,)}).encode())
            code = 1
        finally:
            os.close(write_fd)
            os._exit(code)  # pylint: disable=protected-access
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def call_module(module, args):
    """Run the module's main() here with ARGS; returns what it printed (its JSON result)."""
    from ansible.module_utils.testing import patch_module_args

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), patch_module_args(args):
        mod = importlib.import_module("ansible_collections.overlay.gre.plugins.modules.%s" % module)
        try:
            mod.main()
        except SystemExit:
            pass
    return buf.getvalue()


def run_module_direct(netns, module, args, check=False, diff=False):
    """Run a module of this collection in a forked child that entered NETNS: no Ansible process, same code path.

    Much cheaper than run_module (no ansible start-up, no interpreter start in the lab's slow kernel), so the
    large matrices of attribute tests use it; the end-to-end tests use run_module. MODULE is the short name.
    """
    ensure_collection_path()
    full_args = dict(args)
    full_args["_ansible_check_mode"] = check
    full_args["_ansible_diff"] = diff
    text = in_child(netns, lambda: call_module(module, full_args))
    try:
        result = json.loads(text)
    except ValueError as exc:
        raise AssertionError("module %s printed no JSON result: %r" % (module, text)) from exc
    # ansible-core 2.19 modules report warnings as records; Ansible's controller turns them into strings
    result["warnings"] = [w if isinstance(w, str) else w.get("event", {}).get("msg", repr(w)) for w in result.get("warnings", [])]
    return result


def kernel_can_gre():
    """True where this kernel can create a GRE link (inside the lab, or on a host kernel with ip_gre)."""
    name = new_netns_name("probe")
    try:
        netns_add(name)
        return subprocess.run(["ip", "-n", name, "link", "add", "probe0", "type", "gre",
                               "local", "192.0.2.1", "remote", "192.0.2.2"],
                              capture_output=True, check=False).returncode == 0
    finally:
        netns_del(name)


def iptables_backend_runs(backend):
    """Can this kernel load a rule through this iptables backend? (iptables-nft-save succeeds even where it cannot,
    as in a kernel without nf_tables for IPv4.)"""
    name = new_netns_name("probe")
    try:
        netns_add(name)
        proc = subprocess.run(["ip", "netns", "exec", name, "iptables-%s-restore" % backend, "--noflush"],
                              input="*nat\n-A POSTROUTING -o probe0 -j MASQUERADE\nCOMMIT\n",
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0
    except (OSError, subprocess.CalledProcessError):
        return False
    finally:
        netns_del(name)
