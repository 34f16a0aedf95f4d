"""The topic library of the synthetic MLDR generator (English and Chinese), data only.

Each topic has two aspects; every aspect has sentence templates whose LAST entry is held out of
the training splits (used only by `test_heldout`). Queries paraphrase what is said (other words,
references such as "the flat we viewed"), so retrieval is not string matching; topics that share
vocabulary (flat viewing / moving house, car repair / bike repair, birthday cake / cooking dinner,
concert / football match, hiking / beach holiday) are each other's distractors. Slots `{name}`
are filled from the topic's `slots` or the language's shared slots.

Query lists: the LAST entry of `topic` queries is held out as well. `aspect_queries` map an aspect
to queries about that aspect only; `photo_queries` ask for the topic's pictures.
"""

from __future__ import annotations

#: Topics used in train_sft / train_grpo / validation.
TRAIN_TOPICS = (
    "flat_viewing", "hiking_trip", "birthday_cake", "car_repair", "job_interview", "cat_at_vet",
    "concert", "garden", "football_match", "cooking_dinner", "moving_house", "beach_holiday",
)
#: Topics that appear only in test_heldout.
HELDOUT_TOPICS = ("bike_repair", "dentist_visit", "wedding_planning", "book_club")

SHARED_SLOTS = {
    "en": {
        "day": ["Saturday", "Sunday", "Friday evening", "next Tuesday", "the weekend", "Monday morning"],
        "friend": ["Tom", "Lisa", "Anna", "my brother", "Ben", "Mia", "my cousin"],
        "time": ["10", "half past two", "7 pm", "noon", "9 in the morning"],
    },
    "zh": {
        "day": ["周六", "周日", "周五晚上", "下周二", "这个周末", "周一上午"],
        "friend": ["小王", "丽丽", "安娜", "我哥", "阿斌", "小米", "我表妹"],
        "time": ["十点", "两点半", "晚上七点", "中午", "早上九点"],
    },
}

REACTIONS = {
    "en": ["Oh really?", "Haha, nice.", "Sounds good to me.", "Wait, seriously?", "Fair enough.",
           "That makes sense.", "Hmm, not sure about that.", "Ok, got it."],
    "zh": ["真的吗？", "哈哈，不错。", "我觉得可以。", "等等，认真的？", "也对。", "有道理。",
           "嗯，我不太确定。", "好的，明白了。"],
}
# Lines that carry a picture: the image shows the content, the text does not name the topic.
PHOTO_LINES = {
    "en": ["Look at this.", "Here's a picture.", "Sending you a photo.", "Check this out.", ""],
    "zh": ["你看这个。", "发你一张图。", "给你看张照片。", "瞧瞧。", ""],
}

TOPICS: dict[str, dict] = {
    "flat_viewing": {
        "image": {"shape": "house", "colors": [(200, 90, 60), (230, 200, 150), (90, 60, 40)], "bg": (170, 210, 235)},
        "en": {
            "slots": {"price": ["1200", "950", "1500", "1100"], "room": ["bedroom", "kitchen", "living room", "bathroom"]},
            "aspects": {
                "rent": ["The rent is {price} a month, bills not included.",
                         "The landlord wants a deposit of two months' rent.",
                         "{price} a month is a lot for that street, isn't it?",
                         "Could we ask the agent to knock something off the {price}?"],
                "rooms": ["The {room} was tiny but it had a big window.",
                          "Did you notice the damp in the {room}?",
                          "I liked that the {room} gets sun in the afternoon.",
                          "The {room} needs a fresh coat of paint before anyone moves in."],
            },
            "topic": ["the apartment we went to see", "our visit to the place that is up for rent",
                      "what we thought of the property the agent showed us", "the home viewing with the estate agent"],
            "aspect_queries": {"rent": ["how much the apartment we looked at would cost us"],
                               "rooms": ["the state and size of the rooms in the apartment we visited"]},
            "photo": ["the pictures of the apartment we viewed"],
            "captions": ["a small flat with a red roof", "front of an apartment building"],
        },
        "zh": {
            "slots": {"price": ["三千二", "两千八", "四千五", "三千六"], "room": ["卧室", "厨房", "客厅", "卫生间"]},
            "aspects": {
                "rent": ["房租一个月{price}，水电另算。", "房东要押二付一。", "{price}在那条街上是不是有点贵？", "能不能让中介把{price}再砍一点？"],
                "rooms": ["那个{room}很小，但是窗户很大。", "你注意到{room}有点潮吗？", "我喜欢{room}下午能晒到太阳。", "{room}得重新刷一遍墙才能住。"],
            },
            "topic": ["我们去看的那套公寓", "去看出租屋的那次", "中介带我们看的房子怎么样", "和中介一起看房的事"],
            "aspect_queries": {"rent": ["我们看的那套公寓要花多少钱"], "rooms": ["看的那套公寓里各个房间的情况"]},
            "photo": ["我们看的那套公寓的照片"],
            "captions": ["一套红屋顶的小公寓", "公寓楼的正面"],
        },
    },
    "moving_house": {
        "image": {"shape": "boxes", "colors": [(190, 150, 100), (160, 120, 80), (120, 90, 60)], "bg": (235, 235, 225)},
        "en": {
            "slots": {"count": ["twenty", "thirty", "fifteen", "forty"], "item": ["sofa", "bookshelf", "fridge", "bed frame"]},
            "aspects": {
                "packing": ["I've packed {count} boxes and the kitchen isn't even started.",
                            "Do we have enough tape for the rest of the boxes?",
                            "Label the boxes by room, otherwise we'll never find anything.",
                            "I wrapped the plates in old newspaper so they don't break."],
                "van": ["The van is booked for {day} at {time}.",
                        "Will the {item} even fit through the new door?",
                        "{friend} said he can help carry the {item}.",
                        "The removal company charges extra for the stairs."],
            },
            "topic": ["the relocation to our new address", "when we changed where we live and everything that involved",
                      "getting all our stuff from the old place to the new one", "our house move"],
            "aspect_queries": {"packing": ["putting our belongings into cartons before relocating"],
                               "van": ["the truck and the heavy furniture on relocation day"]},
            "photo": ["the pictures of the cartons when we relocated"],
            "captions": ["a stack of cardboard boxes", "moving boxes piled in a hallway"],
        },
        "zh": {
            "slots": {"count": ["二十", "三十", "十五", "四十"], "item": ["沙发", "书架", "冰箱", "床架"]},
            "aspects": {
                "packing": ["我已经打包了{count}个箱子，厨房还没开始。", "剩下的箱子胶带还够吗？", "箱子按房间贴标签，不然什么都找不到。", "我用旧报纸把盘子包好了，免得碎。"],
                "van": ["货车订在{day}{time}。", "{item}能进新家的门吗？", "{friend}说他可以帮忙抬{item}。", "搬家公司爬楼梯要另外收费。"],
            },
            "topic": ["我们搬到新住处的事", "换地方住以及相关的一切", "把东西从旧家运到新家", "我们搬家那次"],
            "aspect_queries": {"packing": ["搬走之前把东西装进纸箱"], "van": ["搬家那天的车和大件家具"]},
            "photo": ["搬家时纸箱的照片"],
            "captions": ["一摞纸箱", "堆在走廊里的搬家箱子"],
        },
    },
    "hiking_trip": {
        "image": {"shape": "mountain", "colors": [(90, 110, 90), (240, 240, 250), (60, 80, 60)], "bg": (150, 200, 240)},
        "en": {
            "slots": {"km": ["12", "18", "9", "25"], "place": ["the ridge", "the lake trail", "the north peak", "the pine forest"]},
            "aspects": {
                "route": ["The loop is about {km} kilometres with a steep climb at the end.",
                          "We could start at {place} and come down by the waterfall.",
                          "The map says the path up to {place} is closed after rain.",
                          "Let's take the shorter route if the weather turns."],
                "gear": ["Bring proper boots, the rocks are slippery.",
                         "I'll pack sandwiches and two litres of water each.",
                         "Don't forget sunscreen, there's no shade up there.",
                         "My rain jacket has a hole, can I borrow yours?"],
            },
            "topic": ["the walk in the mountains we planned", "our trek up the hills",
                      "the day out climbing to the summit", "the outdoor excursion on foot through the hills"],
            "aspect_queries": {"route": ["which way we would go on the mountain walk and how long it is"],
                               "gear": ["what to carry with us for the mountain walk"]},
            "photo": ["the pictures from the mountain walk"],
            "captions": ["snowy mountain peaks", "a trail winding up a green hill"],
        },
        "zh": {
            "slots": {"km": ["十二", "十八", "九", "二十五"], "place": ["山脊", "湖边小路", "北峰", "松树林"]},
            "aspects": {
                "route": ["这条环线大概{km}公里，最后一段很陡。", "我们可以从{place}出发，从瀑布那边下来。", "地图上说下雨后去{place}的路会封。", "要是变天了就走短一点的路线。"],
                "gear": ["穿登山鞋，石头很滑。", "我来准备三明治，每人两升水。", "别忘了防晒霜，上面没有阴凉。", "我的雨衣破了个洞，能借你的吗？"],
            },
            "topic": ["我们计划的山里徒步", "我们爬山的那次", "登顶那一天", "在山里走路的户外活动"],
            "aspect_queries": {"route": ["爬山走哪条路、有多远"], "gear": ["爬山要带什么东西"]},
            "photo": ["爬山时拍的照片"],
            "captions": ["积雪的山峰", "蜿蜒上山的小路"],
        },
    },
    "beach_holiday": {
        "image": {"shape": "beach", "colors": [(250, 210, 60), (40, 120, 200), (240, 220, 170)], "bg": (160, 220, 250)},
        "en": {
            "slots": {"nights": ["five", "seven", "three", "ten"], "town": ["Nice", "Split", "Malaga", "Faro"]},
            "aspects": {
                "booking": ["I found a hotel in {town} for {nights} nights.",
                            "The flights are cheaper if we leave on {day}.",
                            "Should we book the room with the sea view?",
                            "The travel agent can still cancel the booking for free."],
                "sea": ["The water was so warm I stayed in for an hour.",
                        "We should rent a sunshade, the sand gets really hot.",
                        "Don't forget sunscreen, you burnt last time.",
                        "{friend} wants to try snorkelling by the rocks."],
            },
            "topic": ["our seaside vacation", "the trip to the coast to lie in the sun",
                      "the summer getaway by the ocean", "our days on the shore"],
            "aspect_queries": {"booking": ["reserving the accommodation and flights for the seaside vacation"],
                               "sea": ["swimming and lying on the sand during the seaside vacation"]},
            "photo": ["the pictures from the seaside vacation"],
            "captions": ["a sunny beach with blue sea", "sand, waves and the sun"],
        },
        "zh": {
            "slots": {"nights": ["五", "七", "三", "十"], "town": ["三亚", "青岛", "厦门", "北海"]},
            "aspects": {
                "booking": ["我在{town}找了个酒店，住{nights}晚。", "{day}走的话机票便宜些。", "要不要订海景房？", "旅行社那边现在取消还不收钱。"],
                "sea": ["水很暖，我泡了一个小时。", "我们得租把遮阳伞，沙子太烫了。", "别忘了防晒霜，你上次晒伤了。", "{friend}想去礁石那边浮潜。"],
            },
            "topic": ["我们去海边度假的事", "去海岸晒太阳的那次旅行", "夏天去海边避暑", "在海滩上的那几天"],
            "aspect_queries": {"booking": ["海边度假订住宿和机票"], "sea": ["海边度假时游泳和躺在沙滩上"]},
            "photo": ["海边度假的照片"],
            "captions": ["阳光下的蓝色大海和沙滩", "沙子、海浪和太阳"],
        },
    },
    "birthday_cake": {
        "image": {"shape": "cake", "colors": [(240, 150, 180), (250, 240, 230), (250, 200, 40)], "bg": (250, 235, 200)},
        "en": {
            "slots": {"flavour": ["chocolate", "lemon", "strawberry", "carrot"], "age": ["30", "five", "60", "eight"]},
            "aspects": {
                "baking": ["I'll bake a {flavour} sponge the night before.",
                           "The oven runs hot, so keep it at 170 degrees.",
                           "Use butter, not margarine, or the icing won't set.",
                           "The first layer sank in the middle, I'll have to start again."],
                "party": ["She turns {age} on {day}, so we need candles.",
                          "Let's write her name on top in pink icing.",
                          "{friend} is bringing balloons and party hats.",
                          "Keep it a surprise until we sing."],
            },
            "topic": ["the dessert for her special day", "the sweet treat we made for the celebration of her age",
                      "what we baked for the anniversary of her birth", "the birthday party dessert"],
            "aspect_queries": {"baking": ["how we would prepare the sponge and icing for the celebration"],
                               "party": ["the decorations and the surprise for her special day"]},
            "photo": ["the pictures of the celebration dessert"],
            "captions": ["a pink layered cake with candles", "a birthday cake on a plate"],
        },
        "zh": {
            "slots": {"flavour": ["巧克力", "柠檬", "草莓", "胡萝卜"], "age": ["三十", "五", "六十", "八"]},
            "aspects": {
                "baking": ["我前一天晚上烤个{flavour}海绵蛋糕。", "烤箱温度偏高，开到170度就行。", "用黄油，别用人造黄油，不然糖霜凝不住。", "第一层中间塌了，我得重新做。"],
                "party": ["她{day}满{age}岁，要准备蜡烛。", "在上面用粉色糖霜写她的名字吧。", "{friend}会带气球和派对帽。", "唱歌之前都要保密。"],
            },
            "topic": ["给她过生日准备的甜点", "为她庆生做的甜品", "我们为她的生辰烤的东西", "生日派对上的甜点"],
            "aspect_queries": {"baking": ["庆生的蛋糕胚和糖霜怎么做"], "party": ["生日那天的布置和惊喜"]},
            "photo": ["庆生甜点的照片"],
            "captions": ["插着蜡烛的粉色多层蛋糕", "盘子里的生日蛋糕"],
        },
    },
    "cooking_dinner": {
        "image": {"shape": "pot", "colors": [(80, 80, 90), (220, 100, 50), (120, 180, 80)], "bg": (245, 240, 230)},
        "en": {
            "slots": {"dish": ["risotto", "curry", "lasagne", "stir-fry"], "veg": ["mushrooms", "peppers", "spinach", "onions"]},
            "aspects": {
                "recipe": ["I'm making {dish} tonight, can you pick up some {veg}?",
                           "The recipe says to fry the {veg} first, then add the rice.",
                           "Put the oven on, the {dish} needs forty minutes.",
                           "I added too much salt, can it be fixed?"],
                "guests": ["{friend} is coming over for dinner at {time}.",
                           "Does anyone coming tonight not eat meat?",
                           "I'll set the table for six people.",
                           "Bring a bottle of wine if you pass the shop."],
            },
            "topic": ["the evening meal we prepared at home", "what we were going to eat tonight and who was coming",
                      "the supper we put together in the kitchen", "making food for our guests in the evening"],
            "aspect_queries": {"recipe": ["the ingredients and steps of the evening meal"],
                               "guests": ["the people joining us for the evening meal"]},
            "photo": ["the pictures of the evening meal"],
            "captions": ["a pot of food on the stove", "dinner simmering in a pan"],
        },
        "zh": {
            "slots": {"dish": ["咖喱", "炒饭", "千层面", "小炒肉"], "veg": ["蘑菇", "青椒", "菠菜", "洋葱"]},
            "aspects": {
                "recipe": ["我今晚做{dish}，你能顺路买点{veg}吗？", "菜谱说先炒{veg}，再放米。", "把烤箱打开，{dish}要四十分钟。", "我盐放多了，还能救吗？"],
                "guests": ["{friend}{time}过来吃饭。", "今晚来的人里有不吃肉的吗？", "我摆六个人的餐具。", "路过商店的话带瓶酒。"],
            },
            "topic": ["我们在家做的晚饭", "今晚吃什么以及谁要来", "在厨房准备的晚餐", "晚上给客人做饭"],
            "aspect_queries": {"recipe": ["晚饭用的食材和做法"], "guests": ["来家里一起吃晚饭的人"]},
            "photo": ["晚饭的照片"],
            "captions": ["灶台上的一锅菜", "锅里正在煮的晚饭"],
        },
    },
    "car_repair": {
        "image": {"shape": "car", "colors": [(40, 90, 180), (30, 30, 30), (200, 200, 210)], "bg": (210, 210, 200)},
        "en": {
            "slots": {"part": ["brakes", "clutch", "battery", "exhaust"], "cost": ["300", "450", "180", "800"]},
            "aspects": {
                "fault": ["The car makes a grinding noise when I brake.",
                          "The warning light came on again on the motorway.",
                          "I think the {part} is going, it's been weird for a week.",
                          "It wouldn't start this morning, not even a click."],
                "garage": ["The mechanic says replacing the {part} costs {cost}.",
                           "I can drop it at the garage on {day}.",
                           "They'll lend me a courtesy vehicle while it's in the workshop.",
                           "Ask them if the {part} is still under warranty."],
            },
            "topic": ["the trouble with the vehicle and getting it fixed", "when the automobile broke down",
                      "taking the motor to the mechanic", "the problem with my vehicle's engine and parts"],
            "aspect_queries": {"fault": ["the symptoms of the vehicle problem"],
                               "garage": ["what the workshop said and how much fixing the vehicle costs"]},
            "photo": ["the pictures of the broken vehicle"],
            "captions": ["a blue car with black wheels", "a car parked outside a garage"],
        },
        "zh": {
            "slots": {"part": ["刹车", "离合器", "电瓶", "排气管"], "cost": ["三百", "四百五", "一百八", "八百"]},
            "aspects": {
                "fault": ["我一踩刹车车就吱吱响。", "在高速上警示灯又亮了。", "我觉得是{part}不行了，一个星期都怪怪的。", "今天早上打不着火，一点反应都没有。"],
                "garage": ["师傅说换{part}要{cost}。", "我{day}可以把它送到修理厂。", "修的时候他们会借我一辆代步车。", "问问他们{part}还在保修期内吗。"],
            },
            "topic": ["车坏了要修的事", "汽车抛锚那次", "把车送去给师傅看", "我那辆车发动机和零件的问题"],
            "aspect_queries": {"fault": ["车出问题时的症状"], "garage": ["修理厂怎么说、修车要多少钱"]},
            "photo": ["坏掉的车的照片"],
            "captions": ["一辆黑轮子的蓝色汽车", "停在修理厂外的车"],
        },
    },
    "job_interview": {
        "image": {"shape": "document", "colors": [(250, 250, 250), (60, 60, 70), (40, 70, 140)], "bg": (200, 205, 215)},
        "en": {
            "slots": {"company": ["a bank", "a start-up", "the council", "a design studio"], "role": ["analyst", "designer", "team lead", "engineer"]},
            "aspects": {
                "prep": ["The interview with {company} is on {day} at {time}.",
                         "Can you read my CV before I send it?",
                         "I keep practising the question about my biggest weakness.",
                         "Should I wear a suit or is that too formal?"],
                "outcome": ["They offered me the {role} position!",
                            "The panel asked about a project that failed, I froze a bit.",
                            "They said I'd hear back within two weeks.",
                            "The salary is lower than I hoped, should I negotiate?"],
            },
            "topic": ["my application meeting with the employer", "the hiring conversation for the new position",
                      "when I was being assessed for a post", "the recruitment process I went through"],
            "aspect_queries": {"prep": ["getting ready for the hiring conversation"],
                               "outcome": ["how the hiring conversation went and what they offered"]},
            "photo": ["the pictures of the papers for the application"],
            "captions": ["a printed CV on a desk", "a document with a signature"],
        },
        "zh": {
            "slots": {"company": ["一家银行", "一家创业公司", "区政府", "一家设计工作室"], "role": ["分析师", "设计师", "组长", "工程师"]},
            "aspects": {
                "prep": ["{company}的面试在{day}{time}。", "我发简历之前你能帮我看一下吗？", "我一直在练关于最大缺点的那个问题。", "穿西装会不会太正式了？"],
                "outcome": ["他们给了我{role}的职位！", "面试官问到一个失败的项目，我有点卡住了。", "他们说两周内给我答复。", "工资比我想的低，要不要谈一谈？"],
            },
            "topic": ["我去用人单位应聘的那次谈话", "新岗位的招聘面谈", "我被考核求职的时候", "我经历的招聘流程"],
            "aspect_queries": {"prep": ["为招聘面谈做的准备"], "outcome": ["招聘面谈的结果和待遇"]},
            "photo": ["求职材料的照片"],
            "captions": ["桌上打印出来的简历", "一份签了名的文件"],
        },
    },
    "cat_at_vet": {
        "image": {"shape": "cat", "colors": [(240, 160, 60), (40, 40, 40), (250, 250, 250)], "bg": (200, 230, 210)},
        "en": {
            "slots": {"cat": ["Mittens", "Luna", "Oscar", "Pepper"], "pill": ["antibiotics", "worming tablets", "painkillers", "eye drops"]},
            "aspects": {
                "symptoms": ["{cat} hasn't eaten anything since yesterday.",
                             "She keeps scratching her ear and shaking her head.",
                             "{cat} was sick twice on the carpet this morning.",
                             "She's been hiding under the bed all day."],
                "visit": ["The vet can see {cat} on {day} at {time}.",
                          "The vet gave her {pill} for a week.",
                          "She hated the carrier and cried the whole way.",
                          "The bill was huge, thank goodness for the pet insurance."],
            },
            "topic": ["taking our pet to the animal doctor", "when the kitty was unwell",
                      "the animal clinic appointment for our feline", "our poorly pet and the treatment she got"],
            "aspect_queries": {"symptoms": ["the signs that the kitty was unwell"],
                               "visit": ["what happened at the animal clinic and the medicine"]},
            "photo": ["the pictures of our kitty"],
            "captions": ["an orange cat with pointy ears", "a cat sitting in a carrier"],
        },
        "zh": {
            "slots": {"cat": ["咪咪", "露娜", "奥斯卡", "小花"], "pill": ["抗生素", "驱虫药", "止痛药", "眼药水"]},
            "aspects": {
                "symptoms": ["{cat}从昨天开始什么都不吃。", "她一直抓耳朵还甩头。", "{cat}今天早上在地毯上吐了两次。", "她一整天都躲在床底下。"],
                "visit": ["兽医{day}{time}可以看{cat}。", "兽医给她开了一周的{pill}。", "她讨厌航空箱，一路都在叫。", "账单好贵，还好有宠物保险。"],
            },
            "topic": ["带我们的宠物去看动物医生", "小猫咪生病那次", "给猫主子约的宠物医院", "生病的宠物和她接受的治疗"],
            "aspect_queries": {"symptoms": ["猫咪生病的迹象"], "visit": ["在宠物医院发生的事和开的药"]},
            "photo": ["我们家猫咪的照片"],
            "captions": ["一只尖耳朵的橘猫", "坐在航空箱里的猫"],
        },
    },
    "concert": {
        "image": {"shape": "notes", "colors": [(250, 60, 140), (250, 230, 60), (120, 60, 200)], "bg": (30, 20, 60)},
        "en": {
            "slots": {"band": ["the Velvet Owls", "Blue Harbour", "the Midnight Trains", "Paper Lanterns"], "price": ["45", "60", "80", "35"]},
            "aspects": {
                "tickets": ["Tickets for {band} go on sale on {day}.",
                            "Standing tickets are {price} each, seats are sold out.",
                            "I queued online for an hour and finally got two.",
                            "Can we resell the tickets if we can't make it?"],
                "show": ["The support act was better than {band}, honestly.",
                         "They played the old songs at the end and everyone sang along.",
                         "The sound was so loud my ears are still ringing.",
                         "The lights during the last song were amazing."],
            },
            "topic": ["the gig we went to", "seeing the group perform live",
                      "the night of live music at the venue", "the band's show"],
            "aspect_queries": {"tickets": ["getting passes for the gig and what they cost"],
                               "show": ["how the live performance itself was"]},
            "photo": ["the pictures from the gig"],
            "captions": ["colourful music notes on a dark stage", "stage lights at a concert"],
        },
        "zh": {
            "slots": {"band": ["夜猫乐队", "蓝色港湾", "午夜列车", "纸灯笼乐队"], "price": ["四百五", "六百", "八百", "三百五"]},
            "aspects": {
                "tickets": ["{band}的票{day}开售。", "站票一张{price}，座位票卖完了。", "我在网上排了一个小时终于抢到两张。", "要是去不了票能转卖吗？"],
                "show": ["说实话暖场乐队比{band}还好。", "最后他们唱了老歌，全场一起合唱。", "声音太大了，我耳朵现在还在响。", "最后一首歌的灯光太美了。"],
            },
            "topic": ["我们去看的演出", "看乐队现场表演", "在场馆听现场音乐的那个晚上", "乐队的那场秀"],
            "aspect_queries": {"tickets": ["买演出门票和票价"], "show": ["现场表演本身怎么样"]},
            "photo": ["演出现场的照片"],
            "captions": ["黑暗舞台上彩色的音符", "演唱会的舞台灯光"],
        },
    },
    "football_match": {
        "image": {"shape": "ball", "colors": [(250, 250, 250), (20, 20, 20), (60, 160, 60)], "bg": (70, 170, 70)},
        "en": {
            "slots": {"team": ["United", "the Rovers", "City", "Athletic"], "score": ["2-1", "0-0", "3-2", "1-4"]},
            "aspects": {
                "tickets": ["I got us tickets behind the goal for {day}.",
                            "The stadium is sold out, we'll watch it in the pub.",
                            "Kick-off is at {time}, let's meet at the gate.",
                            "Season tickets went up again this year."],
                "game": ["{team} won {score}, what a finish!",
                         "That penalty should never have been given.",
                         "Our keeper was brilliant in the second half.",
                         "The referee sent off two players before half-time."],
            },
            "topic": ["the soccer game we watched", "the league fixture and the result",
                      "watching the lads play on the pitch", "the ninety minutes at the ground"],
            "aspect_queries": {"tickets": ["getting seats for the soccer game"],
                               "game": ["what happened on the pitch and the final result"]},
            "photo": ["the pictures from the soccer game"],
            "captions": ["a football on green grass", "a ball in front of a goal"],
        },
        "zh": {
            "slots": {"team": ["国安", "申花", "泰山", "海港"], "score": ["二比一", "零比零", "三比二", "一比四"]},
            "aspects": {
                "tickets": ["我买了{day}球门后面的票。", "球场票卖光了，我们去酒吧看吧。", "{time}开球，门口见。", "今年季票又涨价了。"],
                "game": ["{team}{score}赢了，结尾太精彩了！", "那个点球根本不该判。", "我们的门将下半场太神了。", "裁判上半场就罚下了两个人。"],
            },
            "topic": ["我们看的那场足球赛", "联赛的那场比赛和结果", "看球员在草皮上踢球", "在球场的那九十分钟"],
            "aspect_queries": {"tickets": ["买足球赛的座位"], "game": ["场上发生了什么和最后比分"]},
            "photo": ["足球赛的照片"],
            "captions": ["绿草地上的足球", "球门前的一个球"],
        },
    },
    "garden": {
        "image": {"shape": "flower", "colors": [(230, 60, 80), (250, 220, 60), (60, 150, 60)], "bg": (130, 100, 70)},
        "en": {
            "slots": {"plant": ["tomatoes", "roses", "sunflowers", "beans"], "bug": ["slugs", "aphids", "snails", "caterpillars"]},
            "aspects": {
                "planting": ["I planted the {plant} along the fence.",
                             "The seedlings need watering every evening in this heat.",
                             "We should move the pots into the sun.",
                             "Dig in some compost before you sow the {plant}."],
                "pests": ["The {bug} ate half the lettuce overnight.",
                          "Try crushed eggshells around the {plant}.",
                          "The neighbour's cat keeps digging up the beds.",
                          "Something is nibbling the leaves again."],
            },
            "topic": ["our vegetable and flower beds", "growing things in the backyard",
                      "the plot behind the house and what we sowed", "tending the plants outside"],
            "aspect_queries": {"planting": ["sowing and watering in the backyard"],
                               "pests": ["the creatures damaging our plants"]},
            "photo": ["the pictures of the backyard plants"],
            "captions": ["red flowers with green stems", "a flower bed in bloom"],
        },
        "zh": {
            "slots": {"plant": ["西红柿", "玫瑰", "向日葵", "豆角"], "bug": ["鼻涕虫", "蚜虫", "蜗牛", "毛毛虫"]},
            "aspects": {
                "planting": ["我把{plant}种在篱笆边上了。", "这么热，幼苗每天晚上都得浇水。", "我们应该把花盆挪到太阳底下。", "种{plant}之前先翻点堆肥进去。"],
                "pests": ["{bug}一晚上吃掉了一半生菜。", "在{plant}周围撒点碎蛋壳试试。", "邻居家的猫老是刨花坛。", "又有东西在啃叶子了。"],
            },
            "topic": ["我们的菜地和花坛", "在后院种东西", "房子后面那块地和种下的东西", "照料屋外的植物"],
            "aspect_queries": {"planting": ["在后院播种和浇水"], "pests": ["祸害我们植物的小东西"]},
            "photo": ["后院植物的照片"],
            "captions": ["绿茎红花", "开满花的花坛"],
        },
    },
    # ---- held-out topics (test_heldout only) -------------------------------------------------
    "bike_repair": {
        "image": {"shape": "bicycle", "colors": [(220, 40, 40), (30, 30, 30), (180, 180, 180)], "bg": (225, 225, 235)},
        "en": {
            "slots": {"part": ["chain", "back tyre", "brakes", "gears"]},
            "aspects": {
                "fault": ["My {part} keeps slipping on the hill.", "I got a puncture on the way to work."],
                "shop": ["The bike shop will fix the {part} by {day}.", "They want 40 for a new inner tube, that's a joke."],
            },
            "topic": ["fixing my bicycle", "the problem with my two-wheeler and the cycle shop"],
            "aspect_queries": {"fault": ["what went wrong with my bicycle"], "shop": ["what the cycle shop said"]},
            "photo": ["the pictures of my bicycle"],
            "captions": ["a red bicycle", "a bike leaning on a wall"],
        },
        "zh": {
            "slots": {"part": ["链条", "后胎", "刹车", "变速器"]},
            "aspects": {
                "fault": ["我的{part}上坡老是打滑。", "上班路上车胎扎了。"],
                "shop": ["车行说{day}能修好{part}。", "换个内胎要四十，太离谱了。"],
            },
            "topic": ["修我的自行车", "我单车的毛病和车行"],
            "aspect_queries": {"fault": ["我的单车出了什么问题"], "shop": ["车行怎么说的"]},
            "photo": ["我单车的照片"],
            "captions": ["一辆红色自行车", "靠在墙边的单车"],
        },
    },
    "dentist_visit": {
        "image": {"shape": "tooth", "colors": [(250, 250, 245), (120, 200, 230), (230, 120, 120)], "bg": (220, 240, 250)},
        "en": {
            "slots": {"tooth": ["back tooth", "wisdom tooth", "front tooth"]},
            "aspects": {
                "pain": ["My {tooth} hurts whenever I drink something cold.", "I couldn't sleep, the ache was awful."],
                "appointment": ["The dentist can fit me in on {day} at {time}.", "She said I need a filling, and the injection was the worst part."],
            },
            "topic": ["my toothache and the clinic appointment", "seeing the doctor for my teeth"],
            "aspect_queries": {"pain": ["how much my mouth was hurting"], "appointment": ["the dental appointment and the treatment"]},
            "photo": ["the pictures about my teeth"],
            "captions": ["a white tooth icon", "a tooth with a blue background"],
        },
        "zh": {
            "slots": {"tooth": ["后槽牙", "智齿", "门牙"]},
            "aspects": {
                "pain": ["我一喝冷的{tooth}就疼。", "疼得我一晚上没睡着。"],
                "appointment": ["牙医{day}{time}能给我看。", "她说我要补牙，打麻药最难受。"],
            },
            "topic": ["我牙疼和去诊所的事", "去看牙医"],
            "aspect_queries": {"pain": ["我嘴里疼成什么样"], "appointment": ["看牙的预约和治疗"]},
            "photo": ["和我牙齿有关的照片"],
            "captions": ["一颗白色的牙齿图标", "蓝色背景上的牙齿"],
        },
    },
    "wedding_planning": {
        "image": {"shape": "rings", "colors": [(230, 190, 60), (250, 250, 250), (200, 160, 200)], "bg": (250, 235, 240)},
        "en": {
            "slots": {"venue": ["the old barn", "a castle", "the town hall"]},
            "aspects": {
                "venue": ["We're thinking of getting married at {venue}.", "The venue holds 120 guests at most."],
                "guests": ["The invitations go out on {day}.", "Do we really have to invite {friend}?"],
            },
            "topic": ["organising the marriage ceremony", "our plans for the big day as a couple"],
            "aspect_queries": {"venue": ["where the ceremony will take place"], "guests": ["who gets invited to the ceremony"]},
            "photo": ["the pictures for the ceremony"],
            "captions": ["two golden rings", "wedding rings on a cushion"],
        },
        "zh": {
            "slots": {"venue": ["老谷仓", "一座城堡", "市政厅"]},
            "aspects": {
                "venue": ["我们想在{venue}办婚礼。", "场地最多坐一百二十个客人。"],
                "guests": ["请柬{day}发出去。", "我们真的要请{friend}吗？"],
            },
            "topic": ["筹备结婚典礼", "我们俩大日子的计划"],
            "aspect_queries": {"venue": ["典礼在哪里举行"], "guests": ["典礼请谁来"]},
            "photo": ["典礼相关的照片"],
            "captions": ["两枚金戒指", "垫子上的婚戒"],
        },
    },
    "book_club": {
        "image": {"shape": "book", "colors": [(140, 40, 40), (250, 245, 230), (40, 60, 120)], "bg": (235, 220, 190)},
        "en": {
            "slots": {"book": ["the new crime novel", "that memoir", "the sci-fi one"]},
            "aspects": {
                "reading": ["I'm halfway through {book} and I can't put it down.", "The ending was so disappointing."],
                "meeting": ["The reading group meets at {friend}'s on {day}.", "It's my turn to pick the next title."],
            },
            "topic": ["the literature circle we belong to", "the novel we are discussing with the group"],
            "aspect_queries": {"reading": ["what we thought of the novel"], "meeting": ["when and where the literature circle meets"]},
            "photo": ["the pictures of the novel"],
            "captions": ["a red book lying open", "a stack of books"],
        },
        "zh": {
            "slots": {"book": ["那本新推理小说", "那本回忆录", "那本科幻小说"]},
            "aspects": {
                "reading": ["{book}我看了一半，根本放不下。", "结局太让人失望了。"],
                "meeting": ["读书会{day}在{friend}家聚。", "下一本书轮到我来选。"],
            },
            "topic": ["我们参加的读书小组", "我们和小组讨论的那本小说"],
            "aspect_queries": {"reading": ["我们对那本小说的看法"], "meeting": ["读书小组什么时候在哪里聚"]},
            "photo": ["那本小说的照片"],
            "captions": ["一本摊开的红色书", "一摞书"],
        },
    },
}
