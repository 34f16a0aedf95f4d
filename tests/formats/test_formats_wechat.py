"""WeChat desktop exports: CSV (with BOM) and TXT, with and without an image folder."""


from f2rvlm.formats import detect_format, import_chat
from f2rvlm.formats.wechat import CSV_HEADER
from helpers import png_bytes


def csv_row(local_id, kind, content, is_sender="0", sub="0", sender=""):
    return f'{local_id},wxid_kim,{kind},{sub},{is_sender},1790000000,2,"{content}",2026-09-25 14:2{local_id}:00,,小金,{sender}'


CSV = (
    "\n".join(
        [
            CSV_HEADER,
            csv_row(1, 10000, "你已添加了小金"),
            csv_row(2, 1, "你好, 在吗?"),
            csv_row(3, 1, "在", is_sender="1"),
            csv_row(4, 3, r"FileStorage\MsgAttach\b.png"),
            csv_row(5, 3, ""),
            csv_row(6, 34, ""),
            csv_row(7, 47, ""),
            csv_row(8, 49, "<msg><appmsg><title>好的</title></appmsg></msg>", sub="57"),
            csv_row(9, 43, ""),
        ]
    )
    + "\n"
)


def kinds(result):
    return {i.kind: i.count for i in result.ignored}


def test_csv_with_bom_and_image_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(png_bytes((10, 10, 10), (2, 2)))
    (images / "b.png").write_bytes(png_bytes((200, 200, 200), (2, 2)))
    path = tmp_path / "chat.csv"
    path.write_bytes(CSV.encode("utf-8-sig"))
    assert detect_format(path) == "wechat-csv"
    result = import_chat(path, images_dir=images)
    d = result.dialogue
    assert [(u.speaker, u.text) for u in d.utterances] == [
        ("小金", "你好, 在吗?"),
        ("me", "在"),
        ("小金", ""),
        ("小金", ""),
        ("小金", "好的"),
    ]
    assert d.utterances[0].timestamp == "2026-09-25T14:22:00"
    # row 4 names b.png; row 5 takes the next unused image in name order (a.png)
    assert [img.path.rsplit("/", 1)[-1] for img in d.images] == ["b.png", "a.png"]
    assert kinds(result) == {
        "system message": 1,
        "voice message": 1,
        "sticker": 1,
        "quoted message (reply kept)": 1,
        "video": 1,
    }


def test_csv_without_images_reports_them(tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    path = folder / "chat.csv"
    path.write_bytes(CSV.encode("utf-8-sig"))
    result = import_chat(path)
    assert result.dialogue.num_images == 0
    assert kinds(result)["image without its file"] == 2


TXT = """2026-09-25 14:20:00 小金
你好

2026-09-25 14:21:00 我
[图片]

2026-09-25 14:22:00 小金
[语音]

2026-09-25 14:23:00 小金
好看!
引用:我:[图片]

2026-09-25 14:24:00 我
[表情包]

2026-09-25 14:25:00 我
第一行
第二行

"""


def test_txt_blocks_placeholders_and_quotes(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text(TXT, encoding="utf-8")
    assert detect_format(path) == "wechat-txt"
    result = import_chat(path)
    d = result.dialogue
    assert [(u.speaker, u.text) for u in d.utterances] == [
        ("小金", "你好"),
        ("小金", "好看!"),
        ("我", "第一行\n第二行"),
    ]
    assert d.utterances[0].timestamp == "2026-09-25T14:20:00"
    assert kinds(result) == {
        "image without its file": 1,
        "voice message": 1,
        "quoted message (reply kept)": 1,
        "sticker": 1,
    }


def test_txt_images_matched_in_order(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    (images / "0001.jpg").write_bytes(png_bytes())
    path = tmp_path / "chat.txt"
    path.write_text(TXT, encoding="utf-8")
    d = import_chat(path, images_dir=images).dialogue
    assert d.image_hosts == [1] and d.utterances[1].speaker == "我"
