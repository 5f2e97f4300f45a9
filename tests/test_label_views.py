"""The labelling app's views by either spelling: the page shows "unlabelled" and "labelled", the API's names are
"unlabeled" and "labeled"; both are accepted, anything else is a 4xx naming the views."""

from __future__ import annotations

from support.label import app_client


def test_views_take_both_spellings(ws) -> None:  # type: ignore[no-untyped-def]
    with app_client(ws) as c:
        for british, american in (("unlabelled", "unlabeled"), ("labelled", "labeled")):
            a = c.get("/api/images", params={"view": british}).json()
            b = c.get("/api/images", params={"view": american}).json()
            assert a["total"] == b["total"] and [x["id"] for x in a["items"]] == [x["id"] for x in b["items"]]
        assert c.get("/api/images", params={"view": "unlabelled"}).json()["total"] > 0
        r = c.get("/api/images", params={"view": "unlabeledd"})
        assert r.status_code in (400, 422) and "unknown view 'unlabeledd'" in r.text
