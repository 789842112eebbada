package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// DefaultTexts are the built-in request texts: Chinese and mixed-script
// sentences of varied length, from a few characters to a paragraph, so that
// the server sees realistic and uneven token counts.
var DefaultTexts = []string{
	"你好",
	"今天天气不错",
	"我想买一台新电脑",
	"m3e 是一个中文句向量模型",
	"北京是中华人民共和国的首都",
	"请问最近的地铁站怎么走?",
	"这家餐厅的菜味道很好,价格也实惠。",
	"机器学习是人工智能的一个分支。",
	"Hello, 世界!",
	"我正在学习 Go 语言和 Kubernetes。",
	"苹果公司发布了新款 iPhone 手机",
	"如何用 Python 读取一个 CSV 文件?",
	"深度学习模型需要大量的训练数据",
	"明天上午十点在三楼会议室开会,请准时参加。",
	"这本书讲述了一个关于友谊和成长的故事。",
	"TensorRT 可以显著降低推理延迟",
	"Triton Inference Server 支持动态批处理和多实例部署。",
	"句向量可以用于语义搜索、文本聚类和相似度计算。",
	"我的快递三天了还没到,能帮我查一下吗?",
	"长城是世界上最伟大的建筑工程之一。",
	"数据库连接池的大小应该根据并发量来设置。",
	"周末一起去爬山吧,听说山顶的风景特别美。",
	"The quick brown fox jumps over the lazy dog.",
	"GPU 显存不够的时候可以尝试减小 batch size。",
	"中国的四大发明是造纸术、印刷术、火药和指南针。",
	"请把这份报告翻译成英文,明天下班前发给我。",
	"医生建议每天至少喝八杯水,保持充足的睡眠。",
	"上海的房价近年来一直居高不下。",
	"这个 API 的 p95 延迟是 20ms,吞吐量是每秒 500 次请求。",
	"春眠不觉晓,处处闻啼鸟。夜来风雨声,花落知多少。",
	"用户反馈说应用在安卓 14 上启动时会闪退。",
	"自然语言处理包括分词、词性标注、命名实体识别等任务。",
	"新能源汽车的续航里程越来越长,充电也越来越方便。",
	"我们公司正在招聘后端开发工程师,要求熟悉 Go 或 Rust。",
	"2024 年第三季度营收同比增长 15%,净利润 3.2 亿元。",
	"这部电影的剧情有点拖沓,但是演员的表演非常出色。",
	"杭州西湖的春天,柳树发芽,桃花盛开,游人如织。",
	"Transformer 模型的核心是自注意力机制(self-attention)。",
	"如果你明天有空的话,我们可以一起去图书馆复习功课。",
	"退款申请已经提交,预计 3 到 5 个工作日到账。",
	"向量数据库可以存储上亿条句向量并在毫秒级别完成近邻检索。",
	"孩子最近总是咳嗽,晚上睡不好,需要去医院看看吗?",
	"今年的高考作文题目引起了社会各界的广泛讨论。",
	"服务器的 CPU 使用率突然飙升到百分之九十以上,需要排查原因。",
	"在模型部署之前,我们需要把 PyTorch 模型导出为 ONNX 格式,再用 trtexec 转换成 TensorRT 引擎。",
	"黄河是中国第二长河,发源于青藏高原,流经九个省区,最后注入渤海,被称为中华民族的母亲河。",
	"动态批处理会把两毫秒内到达的请求合并成一个批次进行推理,从而在高并发时大幅提高吞吐量,但也会略微增加单个请求的延迟。",
	"客服您好,我上周在网上买的洗衣机送货时外包装破损,安装后发现滚筒有异响,请问可以换货吗?需要我提供哪些材料?",
	"Embedding models map sentences to vectors; 句向量模型把句子映射为向量,语义相近的句子在向量空间中距离更近,可以用余弦相似度来衡量。",
	"随着大语言模型的发展,检索增强生成(RAG)成为企业知识库问答的主流方案:先用句向量模型召回相关文档,再交给大模型生成答案,既减少了幻觉,又能引用最新的内部资料。",
}

// ReadTexts reads request texts from r: one text per line, or JSON lines
// whose objects carry a "text" string (chosen when the first non-blank line
// starts with '{'). Blank lines are skipped; invalid UTF-8 is an error that
// names the line.
func ReadTexts(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	var out []string
	jsonl, decided := false, false
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // UTF-8 BOM
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !decided {
			jsonl, decided = bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")), true
		}
		if !jsonl {
			if !utf8.Valid(line) {
				return nil, fmt.Errorf("line %d: invalid UTF-8", n)
			}
			out = append(out, string(line))
			continue
		}
		var obj struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &obj); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if obj.Text == nil {
			return nil, fmt.Errorf(`line %d: no "text" field`, n)
		}
		if !utf8.ValidString(*obj.Text) {
			return nil, fmt.Errorf("line %d: invalid UTF-8", n)
		}
		out = append(out, *obj.Text)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no texts")
	}
	return out, nil
}

// LoadTexts reads a --data file (see ReadTexts).
func LoadTexts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ReadTexts(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return t, nil
}

// Groups cuts texts into len(texts) requests of n texts each, cycling
// through the texts so that every text starts one request.
func Groups(texts []string, n int) [][]string {
	if n <= 0 {
		n = 1
	}
	out := make([][]string, len(texts))
	for i := range texts {
		g := make([]string, n)
		for j := range g {
			g[j] = texts[(i+j)%len(texts)]
		}
		out[i] = g
	}
	return out
}

// trimForError shortens a server message for one-line errors.
func trimForError(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
