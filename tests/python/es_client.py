#!/usr/bin/env python3
"""The official Python Elasticsearch client (pinned in requirements.txt)
against a running Tessera server.

It starts nothing: the server is given by the environment:

    TESSERA_TEST_URL        e.g. http://127.0.0.1:9200
    TESSERA_TEST_USER       a superuser
    TESSERA_TEST_PASSWORD   its password

Every check calls the API through the client, as an application would, and
fails on any client exception. The checks of routes the server may not have
yet are skipped, with the reason printed, when the server's OpenAPI document
does not list the route, the server answers it with "no handler found", or
its placeholder says the API is not implemented yet.
The last line is "N passed, N failed, N skipped"; the exit status is 1 when
a check failed.
"""

import json
import os
import re
import sys
import traceback
import urllib.request
from base64 import b64encode

from elasticsearch import (
    AuthenticationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
)

URL = os.environ["TESSERA_TEST_URL"].rstrip("/")
USER = os.environ["TESSERA_TEST_USER"]
PASSWORD = os.environ["TESSERA_TEST_PASSWORD"]

PY_USER = "py_user"
PY_PASSWORDS = ("py-client-password-1", "py-client-password-2")


def client(**auth):
    return Elasticsearch(URL, request_timeout=30, **auth)


es = client(basic_auth=(USER, PASSWORD))
CHECKS = []


class Skip(Exception):
    pass


def check(fn):
    CHECKS.append((fn, None))
    return fn


def optional(method, path):
    """A check of a route other work may not have added yet."""

    def wrap(fn):
        CHECKS.append((fn, (method, path)))
        return fn

    return wrap


def routes():
    """(method, path pattern, literal segments) of every operation the
    server documents."""
    req = urllib.request.Request(
        URL + "/_tessera/openapi.json",
        headers={
            "Authorization": "Basic "
            + b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        },
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        doc = json.load(r)
    out = []
    for template, ops in doc.get("paths", {}).items():
        pattern = re.compile(
            "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
        )
        literal = {seg for seg in template.split("/") if not seg.startswith("{")}
        for method in ops:
            out.append((method.upper(), pattern, literal))
    return out


def documented(known, method, path):
    """Whether an operation of the document is `method path` itself: a
    segment that starts with `_` (`_has_privileges`) is never a name, so it
    must be literal in the route's template."""
    reserved = {seg for seg in path.split("/") if seg.startswith("_")}
    return any(
        m == method and p.match(path) and reserved <= literal
        for m, p, literal in known
    )


# ---- the routes every Tessera has


@check
def info():
    r = es.info()
    assert r["version"]["number"].startswith("8."), r
    assert r["tagline"] == "You Know, for Search", r


@check
def authenticate():
    r = es.security.authenticate()
    assert r["username"] == USER, r
    assert r["authentication_type"] == "realm", r


@check
def put_role():
    r = es.security.put_role(
        name="py_role",
        cluster=["manage_own_api_key", "manage_token"],
        metadata={"from": "python"},
    )
    assert r["role"]["created"] is True, r
    r = es.security.get_role(name="py_role")
    assert r["py_role"]["cluster"] == ["manage_own_api_key", "manage_token"], r


@check
def users_and_passwords():
    r = es.security.put_user(
        username=PY_USER,
        password=PY_PASSWORDS[0],
        roles=["py_role"],
        full_name="Python User",
        email="py@example.com",
    )
    assert r["created"] is True, r
    r = es.security.get_user(username=PY_USER)
    assert r[PY_USER]["full_name"] == "Python User", r
    assert r[PY_USER]["roles"] == ["py_role"], r
    es.security.change_password(username=PY_USER, password=PY_PASSWORDS[1])
    me = client(basic_auth=(PY_USER, PY_PASSWORDS[1])).security.authenticate()
    assert me["username"] == PY_USER, me
    try:
        client(basic_auth=(PY_USER, PY_PASSWORDS[0])).security.authenticate()
    except AuthenticationException:
        pass
    else:
        raise AssertionError("the old password still authenticates")


@check
def run_as():
    r = es.options(headers={"es-security-runas-user": PY_USER}).security.authenticate()
    assert r["username"] == PY_USER and r["roles"] == ["py_role"], r
    assert r["authentication_realm"]["name"] == "default_native", r
    assert r["authentication_type"] == "realm", r


@check
def tokens():
    t = es.security.get_token(
        grant_type="password", username=PY_USER, password=PY_PASSWORDS[1]
    )
    assert t["type"] == "Bearer", t
    me = client(bearer_auth=t["access_token"]).security.authenticate()
    assert me["username"] == PY_USER and me["authentication_type"] == "token", me
    n = es.security.get_token(grant_type="refresh_token", refresh_token=t["refresh_token"])
    assert n["access_token"] != t["access_token"], n
    r = es.security.invalidate_token(token=n["access_token"])
    assert r["invalidated_tokens"] == 1 and r["error_count"] == 0, r
    try:
        client(bearer_auth=n["access_token"]).security.authenticate()
    except AuthenticationException:
        pass
    else:
        raise AssertionError("an invalidated token still authenticates")
    c = es.security.get_token(grant_type="client_credentials")
    assert "refresh_token" not in c, c


@check
def api_keys():
    k = es.security.create_api_key(
        name="py-key", expiration="1d", metadata={"purpose": "python client"}
    )
    me = client(api_key=k["encoded"]).security.authenticate()
    assert me["authentication_type"] == "api_key", me
    assert me["api_key"]["id"] == k["id"], me
    r = es.security.get_api_key(id=k["id"])
    assert r["api_keys"][0]["name"] == "py-key", r
    assert r["api_keys"][0]["invalidated"] is False, r
    r = es.security.invalidate_api_key(ids=[k["id"]])
    assert r["invalidated_api_keys"] == [k["id"]], r
    try:
        client(api_key=k["encoded"]).security.authenticate()
    except AuthenticationException:
        pass
    else:
        raise AssertionError("an invalidated API key still authenticates")


@check
def role_mapping():
    r = es.security.put_role_mapping(
        name="py_mapping",
        roles=["py_role"],
        enabled=True,
        rules={"field": {"username": "py_*"}},
    )
    assert r["role_mapping"]["created"] is True, r
    r = es.security.get_role_mapping(name="py_mapping")
    assert r["py_mapping"]["roles"] == ["py_role"], r


# ---- routes other work adds: skipped while the server does not have them


@optional("POST", "/_security/user/_has_privileges")
def has_privileges():
    r = es.security.has_privileges(cluster=["manage_security", "monitor"])
    assert r["username"] == USER, r
    assert r["has_all_requested"] is True, r


@optional("GET", "/_security/user/_privileges")
def get_user_privileges():
    r = es.security.get_user_privileges()
    assert "all" in r["cluster"], r


@optional("PUT", "/_security/privilege")
def put_privileges():
    r = es.security.put_privileges(
        privileges={"py_app": {"read": {"actions": ["data:read/*"]}}}
    )
    assert r["py_app"]["read"]["created"] is True, r


@optional("PUT", "/_security/service/elastic/fleet-server/credential/token/py-token")
def create_service_token():
    r = es.security.create_service_token(
        namespace="elastic", service="fleet-server", name="py-token"
    )
    assert r["created"] is True, r
    assert r["token"]["name"] == "py-token" and r["token"]["value"], r


@optional("POST", "/_security/api_key/grant")
def grant_api_key():
    r = es.security.grant_api_key(
        grant_type="password",
        username=PY_USER,
        password=PY_PASSWORDS[1],
        api_key={"name": "py-granted"},
    )
    assert r["name"] == "py-granted" and r["api_key"], r


@optional("POST", "/_security/_query/api_key")
def query_api_keys():
    es.security.create_api_key(name="py-queried")
    r = es.security.query_api_keys(query={"term": {"name": "py-queried"}})
    assert r["count"] >= 1, r
    assert any(k["name"] == "py-queried" for k in r["api_keys"]), r


@optional("PUT", "/_security/api_key/some-id")
def update_api_key():
    k = client(basic_auth=(PY_USER, PY_PASSWORDS[1])).security.create_api_key(
        name="py-updated"
    )
    r = client(basic_auth=(PY_USER, PY_PASSWORDS[1])).security.update_api_key(
        id=k["id"], metadata={"updated": True}
    )
    assert r["updated"] is True, r


def main():
    known = routes()
    passed = failed = skipped = 0
    for fn, route in CHECKS:
        name = fn.__name__
        try:
            if route and not documented(known, *route):
                raise Skip(f"the server does not document {route[0]} {route[1]}")
            try:
                fn()
            except NotFoundError as e:
                if route and "no handler found" in str(e):
                    raise Skip(f"the server answers 404 to {route[0]} {route[1]}")
                raise
            except BadRequestError as e:
                # A placeholder that names the API as not implemented yet.
                if route and "is not implemented by Tessera" in str(e):
                    raise Skip(f"the server does not implement {route[0]} {route[1]} yet")
                raise
        except Skip as why:
            skipped += 1
            print(f"SKIP {name}: {why}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print(f"PASS {name}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
