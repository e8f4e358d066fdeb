"""`EndpointFolder`: the endpoint label a logged request is counted under, and the rule that folded it.

Real paths of the kinds that filled a replay report with one row per page: WordPress and
Drupal slugs, dated blog URLs, S3-style hashes, static `.html` pages; and API paths that must
keep their names.
"""

from __future__ import annotations

import pytest

from esr.core.endpoints import EndpointFolder, EndpointLabel, EndpointTemplateError, endpoint_label

FOLD = EndpointFolder()


@pytest.mark.parametrize(("target", "label", "rules"), [
    # ids as before: numbers and UUIDs
    ("/claims/8812?x=1", "GET /claims/{id}", ("id",)),
    ("/claims/3f2504e0-4f89-11d3-9a0c-0305e82c3301/docs", "GET /claims/{id}/docs", ("id",)),
    ("/api/v1/claims/42/documents/7", "GET /api/v1/claims/{id}/documents/{id}", ("id",)),
    # hashes: md5, sha1, sha256, a git-like short hash
    ("/objects/d41d8cd98f00b204e9800998ecf8427e", "GET /objects/{id}", ("hex",)),
    ("/repo/commit/da39a3ee5e6b4b0d3255bfef95601890afd80709", "GET /repo/commit/{id}", ("hex",)),
    ("/blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "GET /blobs/sha256/{id}", ("hex",)),
    ("/repo/commit/3f2a9c1", "GET /repo/commit/{id}", ("hex",)),
    # S3-style keys: hash-named objects keep their extension
    ("/assets/2f/9a/5d41402abc4b2a76b9719d911017c592.png", "GET /assets/2f/9a/{id}.png", ("hex",)),
    ("/media/12345.jpg", "GET /media/{id}.jpg", ("id",)),
    # long random tokens
    ("/reset/eyJhbGciOiJIUzI1NiJ9xK3fQ2", "GET /reset/{id}", ("token",)),
    ("/share/Zx81_Kq-pL0mN2bV9cT4yW", "GET /share/{id}", ("token",)),
    ("/v/dQw4w9WgXcQ", "GET /v/{id}", ("token",)),
    # dates: one segment or consecutive year/month/day segments
    ("/reports/2025-03-14", "GET /reports/{date}", ("date",)),
    ("/exports/20250314/summary.csv", "GET /exports/{date}/summary.csv", ("date",)),
    ("/archive/2025/03", "GET /archive/{date}", ("date",)),
    ("/2025/03/14/", "GET /{date}/", ("date",)),
    # dated blog URLs: WordPress day-and-name and month-and-name permalinks
    ("/2025/03/14/hello-world/", "GET /{date}/{slug}/", ("date", "slug")),
    ("/blog/2024/11/why-we-replay-production-traffic", "GET /blog/{date}/{slug}", ("date", "slug")),
    # slugs: WordPress, Drupal, shops
    ("/my-first-post/", "GET /{slug}/", ("slug",)),
    ("/category/news/city-council-approves-new-budget", "GET /category/news/{slug}", ("slug",)),
    ("/node/how-to-apply-for-benefits", "GET /node/{slug}", ("slug",)),
    ("/articles/my-first-post-123", "GET /articles/{slug}", ("slug",)),
    ("/products/iphone-15-pro-max", "GET /products/{slug}", ("slug",)),
    ("/articles/an-unusually-long-article-title-about-access-logs", "GET /articles/{slug}", ("slug",)),
    # static pages: any name.html under the same parent, index.html kept
    ("/docs/getting-started.html", "GET /docs/{slug}.html", ("slug",)),
    ("/docs/Installation.html", "GET /docs/{slug}.html", ("slug",)),
    ("/news/2019/budget.htm", "GET /news/{id}/{slug}.htm", ("id", "slug")),
    ("/docs/index.html", "GET /docs/index.html", ()),
    # real endpoint names keep their names
    ("/api/v1/claims", "GET /api/v1/claims", ()),
    ("/health", "GET /health", ()),
    ("/login", "GET /login", ()),
    ("/api/v2/password-reset-requests", "GET /api/v2/password-reset-requests", ()),
    ("/api/v1/claims/42/supporting-documents", "GET /api/v1/claims/{id}/supporting-documents", ("id",)),
    ("/.well-known/openid-configuration", "GET /.well-known/openid-configuration", ()),
    ("/oauth2/OAuth2Callback", "GET /oauth2/OAuth2Callback", ()),
    ("/cafe/deadbeef", "GET /cafe/deadbeef", ()),
    ("/static/app.min.js", "GET /static/app.min.js", ()),
    ("/login.php", "GET /login.php", ()),
    ("/getAllActiveUserAccounts", "GET /getAllActiveUserAccounts", ()),
    ("/", "GET /", ()),
])
def test_heuristics_fold_what_varies_and_keep_endpoint_names(target: str, label: str,
                                                           rules: tuple[str, ...]) -> None:
    folded = FOLD.fold("GET", target)
    assert (folded.label, folded.rules) == (label, rules)
    assert folded.rule == ("+".join(rules) or "none")


def test_endpoint_label_keeps_its_format() -> None:
    assert endpoint_label("GET", "/claims/8812?x=1") == "GET /claims/{id}"
    assert endpoint_label("POST", "/claims") == "POST /claims"
    assert endpoint_label("GET", "") == "GET /"


def test_thirty_thousand_blog_pages_are_a_handful_of_rows() -> None:
    folder = EndpointFolder()
    labels = {folder.fold("GET", f"/{2020 + i % 5}/{1 + i % 12:02d}/{1 + i % 28:02d}/post-about-topic-{i}").label
              for i in range(30_000)}
    labels |= {folder.fold("GET", f"/docs/page{i}.html").label for i in range(30_000)}
    assert labels == {"GET /{date}/{slug}", "GET /docs/{slug}.html"}


# -- templates ----------------------------------------------------------------------------
def test_a_template_wins_over_the_heuristics() -> None:
    folder = EndpointFolder(["/articles/{slug}", "/users/{name}/settings"])
    assert folder.fold("GET", "/articles/hello?ref=home") == EndpointLabel("GET /articles/{slug}", ("template",),
                                                                          "/articles/{slug}")
    assert folder.fold("PUT", "/users/ada/settings").label == "PUT /users/{name}/settings"
    assert folder.fold("GET", "/users/ada/settings").rule == "template"
    # not matched: the heuristics decide
    assert folder.fold("GET", "/articles/hello/comments/7") == EndpointLabel("GET /articles/hello/comments/{id}",
                                                                            ("id",))
    assert folder.fold("GET", "/articles").rule == "none"


def test_the_first_matching_template_wins_and_a_method_restricts_it() -> None:
    folder = EndpointFolder(["POST /search", "/search/{query}", "GET /files/{path...}", "/docs/*",
                             "/terms-of-service"])
    assert folder.fold("POST", "/search").label == "POST /search"
    assert folder.fold("GET", "/search").rule == "none"
    assert folder.fold("GET", "/search/x").label == "GET /search/{query}"
    assert folder.fold("GET", "/files/a/b/c.txt").label == "GET /files/{path...}"
    assert folder.fold("GET", "/files/a").label == "GET /files/{path...}"
    assert folder.fold("HEAD", "/files/a").rule == "none"
    assert folder.fold("GET", "/docs/guide/intro").label == "GET /docs/*"
    # a literal template pins a page the heuristics would fold
    assert folder.fold("GET", "/terms-of-service").label == "GET /terms-of-service"
    assert folder.fold("GET", "/terms-of-service").rule == "template"
    assert EndpointFolder().fold("GET", "/terms-of-service").label == "GET /{slug}"


def test_a_template_placeholder_can_sit_inside_a_segment() -> None:
    folder = EndpointFolder(["/reports/{name}.pdf"])
    assert folder.fold("GET", "/reports/q1.pdf").label == "GET /reports/{name}.pdf"
    assert folder.fold("GET", "/reports/q1.csv").label == "GET /reports/q1.csv"


@pytest.mark.parametrize(("template", "message"), [
    ("", "'': a template is a path such as /articles/{slug}"),
    ("articles/{slug}", "'articles/{slug}': a template starts with '/'"),
    ("/articles/{slug", "'/articles/{slug': unbalanced brace at position 10"),
    ("/articles/slug}", "'/articles/slug}': unbalanced brace at position 14"),
    ("/articles/{}", "'/articles/{}': a placeholder needs a name, such as {id}, at position 10"),
    ("/articles/{a-b}", "'/articles/{a-b}': placeholder name 'a-b' at position 10 is not a word (letters, digits, _)"),
    ("/files/{path...}/x", "'/files/{path...}/x': {path...} takes the rest of the path, so it must be last"),
    ("/a?b=1", "'/a?b=1': a template matches the path only; drop the query '?b=1'"),
    ("get /a b", "'get /a b': expected [METHOD] /path, e.g. 'GET /articles/{slug}'"),
])
def test_a_template_that_can_never_match_is_refused_by_name(template: str, message: str) -> None:
    with pytest.raises(EndpointTemplateError) as err:
        EndpointFolder(["/fine/{id}", template])
    assert str(err.value) == f"endpoint template {message}"


def test_the_cache_is_bounded_and_answers_the_same() -> None:
    folder = EndpointFolder(cache_size=8)
    first = [folder.fold("GET", f"/claims/{i}/notes/my-note-{i}") for i in range(100)]
    again = [folder.fold("GET", f"/claims/{i}/notes/my-note-{i}") for i in range(100)]
    assert first == again and {f.label for f in first} == {"GET /claims/{id}/notes/{slug}"}
    assert folder.cached <= 8
