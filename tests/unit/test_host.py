"""tasks.max's default: the CPUs this process may use, not the host's."""

from __future__ import annotations

from pathlib import Path

from engine.host import cgroup_cpu_quota, usable_cpus

HOST_CPUS = set(range(64))


def files(root: Path, contents: dict[str, str]) -> Path:
    for name, text in contents.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_cgroup_v2_quota_of_two_cpus_on_a_64_core_host_gives_2(tmp_path):
    root = files(tmp_path, {"proc/self/cgroup": "0::/kubepods/pod1/c1\n",
                            "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "200000 100000\n",
                            "sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert usable_cpus(root, affinity=lambda: HOST_CPUS) == 2


def test_the_tightest_ancestor_limits_and_a_fraction_rounds_up(tmp_path):
    root = files(tmp_path, {"proc/self/cgroup": "0::/a/b\n",
                            "sys/fs/cgroup/a/b/cpu.max": "max 100000\n",
                            "sys/fs/cgroup/a/cpu.max": "150000 100000\n"})
    assert cgroup_cpu_quota(root) == 1.5
    assert usable_cpus(root, affinity=lambda: HOST_CPUS) == 2


def test_a_cgroup_v1_quota(tmp_path):
    root = files(tmp_path, {"proc/self/cgroup": "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n",
                            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
                            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert usable_cpus(root, affinity=lambda: HOST_CPUS) == 3


def test_affinity_limits_when_there_is_no_quota(tmp_path):
    root = files(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cgroup_cpu_quota(root) is None
    assert usable_cpus(root, affinity=lambda: {0, 5, 9}) == 3


def test_no_cgroup_files_at_all_counts_affinity(tmp_path):
    assert usable_cpus(tmp_path, affinity=lambda: {1, 2}) == 2


def test_this_machine_gives_at_least_one():
    assert usable_cpus() >= 1
