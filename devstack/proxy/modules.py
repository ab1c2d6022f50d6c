"""Which nginx module provides a directive, for the modules OpenResty bundles and stock nginx lacks.

Production's host ran OpenResty (`install_openresty.sh` builds it `--with-luajit`), so its proxy
files may use these; stock nginx refuses them with `unknown directive`. Data, read by the lint and
by the choice of the proxy's flavour.
"""

from __future__ import annotations

# The modules OpenResty builds in beside stock nginx's, by the names their Debian packages use.
OPENRESTY_MODULES = ("ndk", "set-misc", "lua", "headers-more", "echo")

_DIRECTIVES = {
    "set-misc": frozenset({
        "set_base32_alphabet", "set_base32_padding", "set_decode_base32", "set_decode_base64",
        "set_decode_base64url", "set_decode_hex", "set_encode_base32", "set_encode_base64",
        "set_encode_base64url", "set_encode_hex", "set_escape_uri", "set_formatted_gmt_time",
        "set_formatted_local_time", "set_hashed_upstream", "set_hmac_sha1", "set_hmac_sha256", "set_if_empty",
        "set_local_today", "set_md5", "set_misc_base32_padding", "set_quote_json_str", "set_quote_pgsql_str",
        "set_quote_sql_str", "set_random", "set_rotate", "set_secure_random_alphanum",
        "set_secure_random_lcalpha", "set_sha1", "set_unescape_uri",
    }),
    "headers-more": frozenset({
        "more_clear_headers", "more_clear_input_headers", "more_set_headers", "more_set_input_headers",
    }),
}
# The lua and echo modules name their directives by pattern: `*_by_lua[_block|_file]`, `lua_*`, `echo*`.
_LUA_SUFFIXES = ("_by_lua", "_by_lua_block", "_by_lua_file")


def module_of(directive: str) -> str | None:
    """The OpenResty-bundled module that provides `directive`, or None for anything else."""
    for module, names in _DIRECTIVES.items():
        if directive in names:
            return module
    if directive.endswith(_LUA_SUFFIXES) or directive.startswith("lua_"):
        return "lua"
    if directive == "echo" or directive.startswith("echo_"):
        return "echo"
    return None
