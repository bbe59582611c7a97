import pyarrow as pa
import pyarrow.parquet as pq

from curate_helpers import rows
from smollab.curate.config import InputConfig
from smollab.curate.read import read_blocks


def run(blocks):
    data = None
    for block in blocks:
        data = block(data, rank=0, world_size=1)
    return list(data)


def test_raw_html_pages_become_extracted_text():
    docs = run(read_blocks({"pages": InputConfig(format="html", bundled="html_misc_pages", limit=6)}))
    assert docs, "trafilatura extracted nothing (is lxml_html_clean installed?)"
    for doc in docs:
        assert doc.id.startswith("pages/") and "<html" not in doc.text.lower() and "</div>" not in doc.text
    assert any(len(doc.text) > 500 for doc in docs)


def test_parquet_input_reads_the_same_texts_as_its_rows(tmp_path):
    records = rows("web_c4_samples", limit=5)
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in records]), tmp_path / "web.parquet")
    docs = run(read_blocks({"web": InputConfig(format="parquet", files=[str(tmp_path / "*.parquet")])}))
    assert [d.text for d in docs] == [r["text"] for r in records]
    assert [d.id for d in docs] == [f"web/{r['id']}" for r in records]
