"""Network profiles (chains, their tokens and explorers) and the token allowlist checked before signing."""

from buyer_agent.networks._config import agent_networks, dump_profiles, sandbox_profiles
from buyer_agent.networks._pinning import UNKNOWN_TOKEN, Refusal, check_token
from buyer_agent.networks._profiles import (
    NETWORKS_ENV,
    NativeToken,
    NetworkProfile,
    Networks,
    TokenInfo,
    builtin_networks,
    load_networks_file,
    parse_profiles,
)

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "NETWORKS_ENV",
    "NativeToken",
    "NetworkProfile",
    "Networks",
    "Refusal",
    "TokenInfo",
    "UNKNOWN_TOKEN",
    "agent_networks",
    "builtin_networks",
    "check_token",
    "dump_profiles",
    "load_networks_file",
    "parse_profiles",
    "sandbox_profiles",
]
