/*
 * text/wordpiece.c — see wordpiece.h.
 *
 * The vocabulary is one string pool + an open-addressing hash table from
 * token bytes to id. Encoding works on code points in the caller's arena:
 * raw text -> special-token split -> BertNormalizer -> words -> WordPiece.
 *
 * Character classes. tokenizers' BertNormalizer and BertPreTokenizer take
 * "other" (Cc/Cf/Co/Cs), "nonspacing mark" (Mn) and "punctuation" (P*)
 * from the unicode_categories crate (tokenizers/src/normalizers/bert.rs,
 * pre_tokenizers/bert.rs), whose tables are Unicode 8.0, while utf8proc is
 * newer (15.0). A code point assigned after 8.0 is unassigned (Cn) in those
 * tables, so it is none of the three: unicode8_assigned[] holds the ranges
 * Unicode 8.0 had assigned (tools/gen_wordpiece_unicode8.py prints it from
 * Perl's Unicode::UCD prop_invlist("In=8.0")), so any later character is
 * unassigned whatever utf8proc version this is built with, and six
 * characters whose category changed since keep their 8.0 one. The parity test checks every
 * scalar value against the Rust library (9.0 tables left 159 apart, these
 * none). White_Space, NFD and lowercase follow current Unicode, as Rust's
 * std and unicode-normalization do.
 */
#include "text/wordpiece.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

rwd_wordpiece_params rwd_wordpiece_default_params(void)
{
	rwd_wordpiece_params p = {
		.max_file_bytes = 16u << 20,
		.max_vocab = 1u << 20,
		.max_token_bytes = 512,
		.max_added_tokens = 1024,
		.lowercase = 1,
	};
	return p;
}

rwd_wordpiece_encode_params rwd_wordpiece_encode_default_params(void)
{
	rwd_wordpiece_encode_params p = { .add_special_tokens = 1, .max_length = 0, .pad_to_max_length = 0 };
	return p;
}

struct special {
	char *s;
	size_t len;
	int32_t id;
};

struct rwd_wordpiece {
	rwd_wordpiece_params lim;
	char *pool;          /* token strings, back to back */
	size_t pool_len, pool_cap;
	struct ent { size_t off; uint32_t len; int32_t id; } *ents;
	size_t n_ents, ents_cap;
	uint32_t *slots;     /* ent index + 1, 0 = empty */
	size_t mask;
	struct special *sp;
	size_t n_sp;
	int32_t max_id;
	int32_t unk, cls, sep, pad;
	char prefix[32];
	size_t prefix_len;
	size_t max_chars;
	bool clean_text, chinese, strip_accents, lowercase;
};

/* ---------------------------------------------------------------- unicode */

static const struct { int32_t lo, hi; } unicode8_assigned[] = {
	{0x0000, 0x0377}, {0x037A, 0x037F}, {0x0384, 0x038A}, {0x038C, 0x038C}, {0x038E, 0x03A1},
	{0x03A3, 0x052F}, {0x0531, 0x0556}, {0x0559, 0x055F}, {0x0561, 0x0587}, {0x0589, 0x058A},
	{0x058D, 0x058F}, {0x0591, 0x05C7}, {0x05D0, 0x05EA}, {0x05F0, 0x05F4}, {0x0600, 0x061C},
	{0x061E, 0x070D}, {0x070F, 0x074A}, {0x074D, 0x07B1}, {0x07C0, 0x07FA}, {0x0800, 0x082D},
	{0x0830, 0x083E}, {0x0840, 0x085B}, {0x085E, 0x085E}, {0x08A0, 0x08B4}, {0x08E3, 0x0983},
	{0x0985, 0x098C}, {0x098F, 0x0990}, {0x0993, 0x09A8}, {0x09AA, 0x09B0}, {0x09B2, 0x09B2},
	{0x09B6, 0x09B9}, {0x09BC, 0x09C4}, {0x09C7, 0x09C8}, {0x09CB, 0x09CE}, {0x09D7, 0x09D7},
	{0x09DC, 0x09DD}, {0x09DF, 0x09E3}, {0x09E6, 0x09FB}, {0x0A01, 0x0A03}, {0x0A05, 0x0A0A},
	{0x0A0F, 0x0A10}, {0x0A13, 0x0A28}, {0x0A2A, 0x0A30}, {0x0A32, 0x0A33}, {0x0A35, 0x0A36},
	{0x0A38, 0x0A39}, {0x0A3C, 0x0A3C}, {0x0A3E, 0x0A42}, {0x0A47, 0x0A48}, {0x0A4B, 0x0A4D},
	{0x0A51, 0x0A51}, {0x0A59, 0x0A5C}, {0x0A5E, 0x0A5E}, {0x0A66, 0x0A75}, {0x0A81, 0x0A83},
	{0x0A85, 0x0A8D}, {0x0A8F, 0x0A91}, {0x0A93, 0x0AA8}, {0x0AAA, 0x0AB0}, {0x0AB2, 0x0AB3},
	{0x0AB5, 0x0AB9}, {0x0ABC, 0x0AC5}, {0x0AC7, 0x0AC9}, {0x0ACB, 0x0ACD}, {0x0AD0, 0x0AD0},
	{0x0AE0, 0x0AE3}, {0x0AE6, 0x0AF1}, {0x0AF9, 0x0AF9}, {0x0B01, 0x0B03}, {0x0B05, 0x0B0C},
	{0x0B0F, 0x0B10}, {0x0B13, 0x0B28}, {0x0B2A, 0x0B30}, {0x0B32, 0x0B33}, {0x0B35, 0x0B39},
	{0x0B3C, 0x0B44}, {0x0B47, 0x0B48}, {0x0B4B, 0x0B4D}, {0x0B56, 0x0B57}, {0x0B5C, 0x0B5D},
	{0x0B5F, 0x0B63}, {0x0B66, 0x0B77}, {0x0B82, 0x0B83}, {0x0B85, 0x0B8A}, {0x0B8E, 0x0B90},
	{0x0B92, 0x0B95}, {0x0B99, 0x0B9A}, {0x0B9C, 0x0B9C}, {0x0B9E, 0x0B9F}, {0x0BA3, 0x0BA4},
	{0x0BA8, 0x0BAA}, {0x0BAE, 0x0BB9}, {0x0BBE, 0x0BC2}, {0x0BC6, 0x0BC8}, {0x0BCA, 0x0BCD},
	{0x0BD0, 0x0BD0}, {0x0BD7, 0x0BD7}, {0x0BE6, 0x0BFA}, {0x0C00, 0x0C03}, {0x0C05, 0x0C0C},
	{0x0C0E, 0x0C10}, {0x0C12, 0x0C28}, {0x0C2A, 0x0C39}, {0x0C3D, 0x0C44}, {0x0C46, 0x0C48},
	{0x0C4A, 0x0C4D}, {0x0C55, 0x0C56}, {0x0C58, 0x0C5A}, {0x0C60, 0x0C63}, {0x0C66, 0x0C6F},
	{0x0C78, 0x0C7F}, {0x0C81, 0x0C83}, {0x0C85, 0x0C8C}, {0x0C8E, 0x0C90}, {0x0C92, 0x0CA8},
	{0x0CAA, 0x0CB3}, {0x0CB5, 0x0CB9}, {0x0CBC, 0x0CC4}, {0x0CC6, 0x0CC8}, {0x0CCA, 0x0CCD},
	{0x0CD5, 0x0CD6}, {0x0CDE, 0x0CDE}, {0x0CE0, 0x0CE3}, {0x0CE6, 0x0CEF}, {0x0CF1, 0x0CF2},
	{0x0D01, 0x0D03}, {0x0D05, 0x0D0C}, {0x0D0E, 0x0D10}, {0x0D12, 0x0D3A}, {0x0D3D, 0x0D44},
	{0x0D46, 0x0D48}, {0x0D4A, 0x0D4E}, {0x0D57, 0x0D57}, {0x0D5F, 0x0D63}, {0x0D66, 0x0D75},
	{0x0D79, 0x0D7F}, {0x0D82, 0x0D83}, {0x0D85, 0x0D96}, {0x0D9A, 0x0DB1}, {0x0DB3, 0x0DBB},
	{0x0DBD, 0x0DBD}, {0x0DC0, 0x0DC6}, {0x0DCA, 0x0DCA}, {0x0DCF, 0x0DD4}, {0x0DD6, 0x0DD6},
	{0x0DD8, 0x0DDF}, {0x0DE6, 0x0DEF}, {0x0DF2, 0x0DF4}, {0x0E01, 0x0E3A}, {0x0E3F, 0x0E5B},
	{0x0E81, 0x0E82}, {0x0E84, 0x0E84}, {0x0E87, 0x0E88}, {0x0E8A, 0x0E8A}, {0x0E8D, 0x0E8D},
	{0x0E94, 0x0E97}, {0x0E99, 0x0E9F}, {0x0EA1, 0x0EA3}, {0x0EA5, 0x0EA5}, {0x0EA7, 0x0EA7},
	{0x0EAA, 0x0EAB}, {0x0EAD, 0x0EB9}, {0x0EBB, 0x0EBD}, {0x0EC0, 0x0EC4}, {0x0EC6, 0x0EC6},
	{0x0EC8, 0x0ECD}, {0x0ED0, 0x0ED9}, {0x0EDC, 0x0EDF}, {0x0F00, 0x0F47}, {0x0F49, 0x0F6C},
	{0x0F71, 0x0F97}, {0x0F99, 0x0FBC}, {0x0FBE, 0x0FCC}, {0x0FCE, 0x0FDA}, {0x1000, 0x10C5},
	{0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x1248}, {0x124A, 0x124D}, {0x1250, 0x1256},
	{0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0},
	{0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6},
	{0x12D8, 0x1310}, {0x1312, 0x1315}, {0x1318, 0x135A}, {0x135D, 0x137C}, {0x1380, 0x1399},
	{0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1400, 0x169C}, {0x16A0, 0x16F8}, {0x1700, 0x170C},
	{0x170E, 0x1714}, {0x1720, 0x1736}, {0x1740, 0x1753}, {0x1760, 0x176C}, {0x176E, 0x1770},
	{0x1772, 0x1773}, {0x1780, 0x17DD}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9}, {0x1800, 0x180E},
	{0x1810, 0x1819}, {0x1820, 0x1877}, {0x1880, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E},
	{0x1920, 0x192B}, {0x1930, 0x193B}, {0x1940, 0x1940}, {0x1944, 0x196D}, {0x1970, 0x1974},
	{0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x19D0, 0x19DA}, {0x19DE, 0x1A1B}, {0x1A1E, 0x1A5E},
	{0x1A60, 0x1A7C}, {0x1A7F, 0x1A89}, {0x1A90, 0x1A99}, {0x1AA0, 0x1AAD}, {0x1AB0, 0x1ABE},
	{0x1B00, 0x1B4B}, {0x1B50, 0x1B7C}, {0x1B80, 0x1BF3}, {0x1BFC, 0x1C37}, {0x1C3B, 0x1C49},
	{0x1C4D, 0x1C7F}, {0x1CC0, 0x1CC7}, {0x1CD0, 0x1CF6}, {0x1CF8, 0x1CF9}, {0x1D00, 0x1DF5},
	{0x1DFC, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57},
	{0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
	{0x1FB6, 0x1FC4}, {0x1FC6, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FDD, 0x1FEF}, {0x1FF2, 0x1FF4},
	{0x1FF6, 0x1FFE}, {0x2000, 0x2064}, {0x2066, 0x2071}, {0x2074, 0x208E}, {0x2090, 0x209C},
	{0x20A0, 0x20BE}, {0x20D0, 0x20F0}, {0x2100, 0x218B}, {0x2190, 0x23FA}, {0x2400, 0x2426},
	{0x2440, 0x244A}, {0x2460, 0x2B73}, {0x2B76, 0x2B95}, {0x2B98, 0x2BB9}, {0x2BBD, 0x2BC8},
	{0x2BCA, 0x2BD1}, {0x2BEC, 0x2BEF}, {0x2C00, 0x2C2E}, {0x2C30, 0x2C5E}, {0x2C60, 0x2CF3},
	{0x2CF9, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67}, {0x2D6F, 0x2D70},
	{0x2D7F, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE},
	{0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2DE0, 0x2E42},
	{0x2E80, 0x2E99}, {0x2E9B, 0x2EF3}, {0x2F00, 0x2FD5}, {0x2FF0, 0x2FFB}, {0x3000, 0x303F},
	{0x3041, 0x3096}, {0x3099, 0x30FF}, {0x3105, 0x312D}, {0x3131, 0x318E}, {0x3190, 0x31BA},
	{0x31C0, 0x31E3}, {0x31F0, 0x321E}, {0x3220, 0x32FE}, {0x3300, 0x4DB5}, {0x4DC0, 0x9FD5},
	{0xA000, 0xA48C}, {0xA490, 0xA4C6}, {0xA4D0, 0xA62B}, {0xA640, 0xA6F7}, {0xA700, 0xA7AD},
	{0xA7B0, 0xA7B7}, {0xA7F7, 0xA82B}, {0xA830, 0xA839}, {0xA840, 0xA877}, {0xA880, 0xA8C4},
	{0xA8CE, 0xA8D9}, {0xA8E0, 0xA8FD}, {0xA900, 0xA953}, {0xA95F, 0xA97C}, {0xA980, 0xA9CD},
	{0xA9CF, 0xA9D9}, {0xA9DE, 0xA9FE}, {0xAA00, 0xAA36}, {0xAA40, 0xAA4D}, {0xAA50, 0xAA59},
	{0xAA5C, 0xAAC2}, {0xAADB, 0xAAF6}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16},
	{0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB65}, {0xAB70, 0xABED}, {0xABF0, 0xABF9},
	{0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xD800, 0xFA6D}, {0xFA70, 0xFAD9},
	{0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E},
	{0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFBC1}, {0xFBD3, 0xFD3F}, {0xFD50, 0xFD8F},
	{0xFD92, 0xFDC7}, {0xFDD0, 0xFDFD}, {0xFE00, 0xFE19}, {0xFE20, 0xFE52}, {0xFE54, 0xFE66},
	{0xFE68, 0xFE6B}, {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFEFF, 0xFEFF}, {0xFF01, 0xFFBE},
	{0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0xFFE0, 0xFFE6},
	{0xFFE8, 0xFFEE}, {0xFFF9, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
	{0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA},
	{0x10100, 0x10102}, {0x10107, 0x10133}, {0x10137, 0x1018C}, {0x10190, 0x1019B},
	{0x101A0, 0x101A0}, {0x101D0, 0x101FD}, {0x10280, 0x1029C}, {0x102A0, 0x102D0},
	{0x102E0, 0x102FB}, {0x10300, 0x10323}, {0x10330, 0x1034A}, {0x10350, 0x1037A},
	{0x10380, 0x1039D}, {0x1039F, 0x103C3}, {0x103C8, 0x103D5}, {0x10400, 0x1049D},
	{0x104A0, 0x104A9}, {0x10500, 0x10527}, {0x10530, 0x10563}, {0x1056F, 0x1056F},
	{0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10800, 0x10805},
	{0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
	{0x1083F, 0x10855}, {0x10857, 0x1089E}, {0x108A7, 0x108AF}, {0x108E0, 0x108F2},
	{0x108F4, 0x108F5}, {0x108FB, 0x1091B}, {0x1091F, 0x10939}, {0x1093F, 0x1093F},
	{0x10980, 0x109B7}, {0x109BC, 0x109CF}, {0x109D2, 0x10A03}, {0x10A05, 0x10A06},
	{0x10A0C, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A33}, {0x10A38, 0x10A3A},
	{0x10A3F, 0x10A47}, {0x10A50, 0x10A58}, {0x10A60, 0x10A9F}, {0x10AC0, 0x10AE6},
	{0x10AEB, 0x10AF6}, {0x10B00, 0x10B35}, {0x10B39, 0x10B55}, {0x10B58, 0x10B72},
	{0x10B78, 0x10B91}, {0x10B99, 0x10B9C}, {0x10BA9, 0x10BAF}, {0x10C00, 0x10C48},
	{0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10CFA, 0x10CFF}, {0x10E60, 0x10E7E},
	{0x11000, 0x1104D}, {0x11052, 0x1106F}, {0x1107F, 0x110C1}, {0x110D0, 0x110E8},
	{0x110F0, 0x110F9}, {0x11100, 0x11134}, {0x11136, 0x11143}, {0x11150, 0x11176},
	{0x11180, 0x111CD}, {0x111D0, 0x111DF}, {0x111E1, 0x111F4}, {0x11200, 0x11211},
	{0x11213, 0x1123D}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D},
	{0x1128F, 0x1129D}, {0x1129F, 0x112A9}, {0x112B0, 0x112EA}, {0x112F0, 0x112F9},
	{0x11300, 0x11303}, {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328},
	{0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339}, {0x1133C, 0x11344},
	{0x11347, 0x11348}, {0x1134B, 0x1134D}, {0x11350, 0x11350}, {0x11357, 0x11357},
	{0x1135D, 0x11363}, {0x11366, 0x1136C}, {0x11370, 0x11374}, {0x11480, 0x114C7},
	{0x114D0, 0x114D9}, {0x11580, 0x115B5}, {0x115B8, 0x115DD}, {0x11600, 0x11644},
	{0x11650, 0x11659}, {0x11680, 0x116B7}, {0x116C0, 0x116C9}, {0x11700, 0x11719},
	{0x1171D, 0x1172B}, {0x11730, 0x1173F}, {0x118A0, 0x118F2}, {0x118FF, 0x118FF},
	{0x11AC0, 0x11AF8}, {0x12000, 0x12399}, {0x12400, 0x1246E}, {0x12470, 0x12474},
	{0x12480, 0x12543}, {0x13000, 0x1342E}, {0x14400, 0x14646}, {0x16800, 0x16A38},
	{0x16A40, 0x16A5E}, {0x16A60, 0x16A69}, {0x16A6E, 0x16A6F}, {0x16AD0, 0x16AED},
	{0x16AF0, 0x16AF5}, {0x16B00, 0x16B45}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
	{0x16B63, 0x16B77}, {0x16B7D, 0x16B8F}, {0x16F00, 0x16F44}, {0x16F50, 0x16F7E},
	{0x16F8F, 0x16F9F}, {0x1B000, 0x1B001}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C},
	{0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1BC9C, 0x1BCA3}, {0x1D000, 0x1D0F5},
	{0x1D100, 0x1D126}, {0x1D129, 0x1D1E8}, {0x1D200, 0x1D245}, {0x1D300, 0x1D356},
	{0x1D360, 0x1D371}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F},
	{0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9},
	{0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
	{0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E},
	{0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
	{0x1D6A8, 0x1D7CB}, {0x1D7CE, 0x1DA8B}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF},
	{0x1E800, 0x1E8C4}, {0x1E8C7, 0x1E8D6}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F},
	{0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32},
	{0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
	{0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F},
	{0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
	{0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62},
	{0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77},
	{0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B},
	{0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x1EEF0, 0x1EEF1},
	{0x1F000, 0x1F02B}, {0x1F030, 0x1F093}, {0x1F0A0, 0x1F0AE}, {0x1F0B1, 0x1F0BF},
	{0x1F0C1, 0x1F0CF}, {0x1F0D1, 0x1F0F5}, {0x1F100, 0x1F10C}, {0x1F110, 0x1F12E},
	{0x1F130, 0x1F16B}, {0x1F170, 0x1F19A}, {0x1F1E6, 0x1F202}, {0x1F210, 0x1F23A},
	{0x1F240, 0x1F248}, {0x1F250, 0x1F251}, {0x1F300, 0x1F579}, {0x1F57B, 0x1F5A3},
	{0x1F5A5, 0x1F6D0}, {0x1F6E0, 0x1F6EC}, {0x1F6F0, 0x1F6F3}, {0x1F700, 0x1F773},
	{0x1F780, 0x1F7D4}, {0x1F800, 0x1F80B}, {0x1F810, 0x1F847}, {0x1F850, 0x1F859},
	{0x1F860, 0x1F887}, {0x1F890, 0x1F8AD}, {0x1F910, 0x1F918}, {0x1F980, 0x1F984},
	{0x1F9C0, 0x1F9C0}, {0x1FFFE, 0x2A6D6}, {0x2A700, 0x2B734}, {0x2B740, 0x2B81D},
	{0x2B820, 0x2CEA1}, {0x2F800, 0x2FA1D}, {0x2FFFE, 0x2FFFF}, {0x3FFFE, 0x3FFFF},
	{0x4FFFE, 0x4FFFF}, {0x5FFFE, 0x5FFFF}, {0x6FFFE, 0x6FFFF}, {0x7FFFE, 0x7FFFF},
	{0x8FFFE, 0x8FFFF}, {0x9FFFE, 0x9FFFF}, {0xAFFFE, 0xAFFFF}, {0xBFFFE, 0xBFFFF},
	{0xCFFFE, 0xCFFFF}, {0xDFFFE, 0xDFFFF}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
	{0xE0100, 0xE01EF}, {0xEFFFE, 0x10FFFF},
};

/* Not assigned in Unicode 8.0 (so Cn in the unicode_categories crate). */
static bool newer_than_unicode8(int32_t c)
{
	size_t lo = 0, hi = sizeof(unicode8_assigned) / sizeof(unicode8_assigned[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c < unicode8_assigned[mid].lo)
			hi = mid;
		else if (c > unicode8_assigned[mid].hi)
			lo = mid + 1;
		else
			return false;
	}
	return true;
}

/* Unicode White_Space (Rust char::is_whitespace). */
static bool is_white_space(int32_t c)
{
	if (c <= 0x20)
		return c == 0x20 || (c >= 0x09 && c <= 0x0D);
	if (c < 0x85)
		return false;
	return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
		c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* bert.rs is_control: Cc/Cf/Co/Cs ("other" less Cn), \t \n \r excepted. */
static bool is_control(int32_t c)
{
	if (c == '\t' || c == '\n' || c == '\r')
		return false;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CS:
		return true;
	case UTF8PROC_CATEGORY_CF:
		return !newer_than_unicode8(c);
	default:
		return false;
	}
}

static bool is_chinese(int32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
		(c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
		(c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
		(c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Characters whose category changed after Unicode 8.0 (their 8.0 one counts). */
static bool was_mn_in_unicode8(int32_t c, bool *known)
{
	*known = true;
	if (c == 0x1734) /* Mn in 8.0, Mc since */
		return true;
	if (c == 0x1885 || c == 0x1886 || c == 0xA9BD || c == 0x111C9) /* Lo/Mc/Po in 8.0, Mn since */
		return false;
	*known = false;
	return false;
}

static bool is_mn(int32_t c)
{
	bool known;
	bool old = was_mn_in_unicode8(c, &known);
	if (known)
		return old;
	return utf8proc_category(c) == UTF8PROC_CATEGORY_MN && !newer_than_unicode8(c);
}

/* BertPreTokenizer: ASCII punctuation or Unicode P*. */
static bool is_punct(int32_t c)
{
	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
			(c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
	if (c == 0x166D || c == 0x111C9) /* Po in 8.0, So / Mn since */
		return true;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return !newer_than_unicode8(c);
	default:
		return false;
	}
}

static size_t utf8_enc(int32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* 1 if s[0..n) is valid UTF-8 (no surrogates, no overlongs). */
static bool utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

/* ---------------------------------------------------------------- vocab */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static int64_t vocab_slot(const rwd_wordpiece *t, const char *s, size_t n)
{
	if (!t->slots)
		return -1;
	size_t i = hash_bytes(s, n) & t->mask;
	for (;;) {
		uint32_t e = t->slots[i];
		if (!e)
			return -(int64_t)i - 2;
		const struct ent *en = &t->ents[e - 1];
		if (en->len == n && memcmp(t->pool + en->off, s, n) == 0)
			return (int64_t)(e - 1);
		i = (i + 1) & t->mask;
	}
}

static int32_t vocab_find(const rwd_wordpiece *t, const char *s, size_t n)
{
	int64_t e = vocab_slot(t, s, n);
	return e >= 0 ? t->ents[e].id : -1;
}

static int rehash(rwd_wordpiece *t, size_t cap)
{
	uint32_t *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return RWD_E_NOMEM;
	free(t->slots);
	t->slots = slots;
	t->mask = cap - 1;
	for (size_t k = 0; k < t->n_ents; k++) {
		const struct ent *en = &t->ents[k];
		size_t i = hash_bytes(t->pool + en->off, en->len) & t->mask;
		while (t->slots[i])
			i = (i + 1) & t->mask;
		t->slots[i] = (uint32_t)(k + 1);
	}
	return 0;
}

/* Insert or override token -> id. */
static int vocab_put(rwd_wordpiece *t, const char *s, size_t n, int32_t id, rwd_error *err)
{
	if (n > t->lim.max_token_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "token of %zu bytes exceeds the limit of %zu",
			n, t->lim.max_token_bytes);
	int64_t e = vocab_slot(t, s, n);
	if (e >= 0) {
		t->ents[e].id = id;
		if (id > t->max_id)
			t->max_id = id;
		return 0;
	}
	if (t->n_ents >= t->lim.max_vocab)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu vocabulary entries", t->lim.max_vocab);
	if (t->n_ents == t->ents_cap) {
		size_t cap = t->ents_cap ? 2 * t->ents_cap : 1024;
		struct ent *ne = realloc(t->ents, cap * sizeof(*ne));
		if (!ne)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		t->ents = ne;
		t->ents_cap = cap;
	}
	if (t->pool_len + n + 1 > t->pool_cap) {
		size_t cap = t->pool_cap ? t->pool_cap : 1 << 16;
		while (cap < t->pool_len + n + 1)
			cap *= 2;
		char *np = realloc(t->pool, cap);
		if (!np)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		t->pool = np;
		t->pool_cap = cap;
	}
	memcpy(t->pool + t->pool_len, s, n);
	t->pool[t->pool_len + n] = '\0';
	t->ents[t->n_ents] = (struct ent){ .off = t->pool_len, .len = (uint32_t)n, .id = id };
	t->pool_len += n + 1;
	t->n_ents++;
	if (id > t->max_id)
		t->max_id = id;
	if (!t->slots || 2 * t->n_ents > t->mask + 1) {
		if (rehash(t, t->slots ? 2 * (t->mask + 1) : 4096))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	} else {
		size_t i = (size_t)(-vocab_slot(t, s, n) - 2);
		t->slots[i] = (uint32_t)t->n_ents;
	}
	return 0;
}

static int special_put(rwd_wordpiece *t, const char *s, size_t n, int32_t id, rwd_error *err)
{
	if (n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "empty special token");
	if (n > t->lim.max_token_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "special token of %zu bytes exceeds the limit of %zu",
			n, t->lim.max_token_bytes);
	for (size_t i = 0; i < t->n_sp; i++) {
		if (t->sp[i].len == n && memcmp(t->sp[i].s, s, n) == 0) {
			t->sp[i].id = id;
			return 0;
		}
	}
	if (t->n_sp >= t->lim.max_added_tokens)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu added tokens", t->lim.max_added_tokens);
	struct special *ns = realloc(t->sp, (t->n_sp + 1) * sizeof(*ns));
	if (!ns)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	t->sp = ns;
	char *c = malloc(n + 1);
	if (!c)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	memcpy(c, s, n);
	c[n] = '\0';
	t->sp[t->n_sp++] = (struct special){ .s = c, .len = n, .id = id };
	if (id > t->max_id)
		t->max_id = id;
	return 0;
}

void rwd_wordpiece_free(rwd_wordpiece *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_sp; i++)
		free(t->sp[i].s);
	free(t->sp);
	free(t->slots);
	free(t->ents);
	free(t->pool);
	free(t);
}

static rwd_wordpiece *wp_new(const rwd_wordpiece_params *params)
{
	rwd_wordpiece *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->lim = params ? *params : rwd_wordpiece_default_params();
	t->max_id = -1;
	t->unk = t->cls = t->sep = t->pad = -1;
	memcpy(t->prefix, "##", 3);
	t->prefix_len = 2;
	t->max_chars = 100;
	t->clean_text = t->chinese = true;
	return t;
}

static int read_file(const char *path, size_t max, char **out, size_t *len, rwd_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int code = errno == ENOENT ? RWD_E_NOTFOUND : RWD_E_IO;
		rwd_errorf(err, code, "cannot open: %s", strerror(errno));
		rwd_error_where(err, path, NULL);
		return code;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		rwd_errorf(err, RWD_E_IO, "not a regular file");
		rwd_error_where(err, path, NULL);
		return RWD_E_IO;
	}
	if ((uint64_t)st.st_size > max) {
		fclose(f);
		rwd_errorf(err, RWD_E_LIMIT, "file of %lld bytes exceeds the limit of %zu",
			(long long)st.st_size, max);
		rwd_error_where(err, path, NULL);
		return RWD_E_LIMIT;
	}
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	if (!buf) {
		fclose(f);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	if (fread(buf, 1, n, f) != n) {
		fclose(f);
		free(buf);
		rwd_errorf(err, RWD_E_IO, "read failed");
		rwd_error_where(err, path, NULL);
		return RWD_E_IO;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The BERT specials present in the vocabulary become raw-text matches. */
static int finish(rwd_wordpiece *t, const char *unk, rwd_error *err)
{
	t->unk = vocab_find(t, unk, strlen(unk));
	if (t->unk < 0)
		return rwd_errorf(err, RWD_E_INVALID, "the unknown token %s is not in the vocabulary", unk);
	if (t->pad < 0)
		t->pad = rwd_wordpiece_token_to_id(t, "[PAD]");
	return 0;
}

int rwd_wordpiece_load_vocab_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err)
{
	*out = NULL;
	int rc;
	rwd_wordpiece *t = wp_new(params);
	if (!t)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (len > t->lim.max_file_bytes) {
		rc = rwd_errorf(err, RWD_E_LIMIT, "%zu bytes exceed the limit of %zu", len, t->lim.max_file_bytes);
		goto fail;
	}
	if (!utf8_valid(data, len)) {
		rc = rwd_errorf(err, RWD_E_FORMAT, "not valid UTF-8");
		goto fail;
	}
	t->lowercase = t->lim.lowercase != 0;
	t->strip_accents = t->lowercase;
	size_t pos = 0, line = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		/* Rust's str::trim_end: trailing White_Space */
		size_t e = end;
		while (e > pos) {
			size_t s = e - 1;
			while (s > pos && ((unsigned char)data[s] & 0xC0) == 0x80)
				s--;
			utf8proc_int32_t c;
			utf8proc_iterate((const utf8proc_uint8_t *)data + s, (utf8proc_ssize_t)(e - s), &c);
			if (!is_white_space(c))
				break;
			e = s;
		}
		if (line > (size_t)INT32_MAX - 1) {
			rc = rwd_errorf(err, RWD_E_LIMIT, "too many lines");
			goto fail;
		}
		rc = vocab_put(t, data + pos, e - pos, (int32_t)line, err);
		if (rc) {
			rwd_error_at(err, (int)(line + 1), 0, (int64_t)pos);
			goto fail;
		}
		line++;
		pos = nl ? end + 1 : len;
	}
	static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		int32_t id = vocab_find(t, specials[i], strlen(specials[i]));
		if (id >= 0 && (rc = special_put(t, specials[i], strlen(specials[i]), id, err)))
			goto fail;
	}
	t->cls = vocab_find(t, "[CLS]", 5);
	t->sep = vocab_find(t, "[SEP]", 5);
	if ((rc = finish(t, "[UNK]", err)))
		goto fail;
	*out = t;
	return 0;
fail:
	rwd_error_where(err, name, NULL);
	rwd_wordpiece_free(t);
	return rc;
}

int rwd_wordpiece_load_vocab(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	rwd_wordpiece_params p = params ? *params : rwd_wordpiece_default_params();
	char *buf;
	size_t len;
	*out = NULL;
	int rc = read_file(path, p.max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = rwd_wordpiece_load_vocab_bytes(buf, len, path, &p, out, err);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- tokenizer.json */

static int jbool(const json_t *o, const char *key, bool dflt, bool *out, rwd_error *err, const char *path)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v)) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "%s must be a boolean", key);
	}
	*out = json_is_true(v);
	return 0;
}

/* Id of a post-processor special: ["[CLS]", 101] of BertProcessing. */
static int pair_id(const json_t *v, int32_t *id, rwd_error *err, const char *path)
{
	if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
		!json_is_integer(json_array_get(v, 1))) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "expected [token, id]");
	}
	json_int_t i = json_integer_value(json_array_get(v, 1));
	if (i < 0 || i > INT32_MAX) {
		rwd_error_where(err, NULL, path);
		return rwd_errorf(err, RWD_E_INVALID, "id out of range");
	}
	*id = (int32_t)i;
	return 0;
}

/* TemplateProcessing "single" as [SpecialToken X, Sequence A, SpecialToken Y]. */
static int template_ids(rwd_wordpiece *t, const json_t *pp, rwd_error *err)
{
	const json_t *single = json_object_get(pp, "single");
	const json_t *sts = json_object_get(pp, "special_tokens");
	if (!json_is_array(single) || json_array_size(single) != 3 || !json_is_object(sts))
		goto unsup;
	int32_t ids[2];
	for (size_t k = 0; k < 3; k++) {
		const json_t *piece = json_array_get(single, k);
		if (k == 1) {
			if (!json_object_get(piece, "Sequence"))
				goto unsup;
			continue;
		}
		const json_t *st = json_object_get(piece, "SpecialToken");
		const char *name = json_string_value(json_object_get(st, "id"));
		const json_t *ent = name ? json_object_get(sts, name) : NULL;
		const json_t *idl = json_object_get(ent, "ids");
		if (!json_is_array(idl) || json_array_size(idl) != 1 || !json_is_integer(json_array_get(idl, 0)))
			goto unsup;
		json_int_t v = json_integer_value(json_array_get(idl, 0));
		if (v < 0 || v > INT32_MAX)
			goto unsup;
		ids[k / 2] = (int32_t)v;
	}
	t->cls = ids[0];
	t->sep = ids[1];
	return 0;
unsup:
	rwd_error_where(err, NULL, "post_processor.single");
	return rwd_errorf(err, RWD_E_UNSUPPORTED, "only a TemplateProcessing of the form X $A Y is supported");
}

static int load_json_obj(rwd_wordpiece *t, const json_t *root, rwd_error *err)
{
	int rc;
	const json_t *model = json_object_get(root, "model");
	const char *mtype = json_string_value(json_object_get(model, "type"));
	if (!json_is_object(model) || !mtype || strcmp(mtype, "WordPiece") != 0) {
		rwd_error_where(err, NULL, "model.type");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "not a WordPiece model");
	}
	const json_t *vocab = json_object_get(model, "vocab");
	if (!json_is_object(vocab)) {
		rwd_error_where(err, NULL, "model.vocab");
		return rwd_errorf(err, RWD_E_INVALID, "model.vocab must be an object");
	}
	if (json_object_size(vocab) > t->lim.max_vocab) {
		rwd_error_where(err, NULL, "model.vocab");
		return rwd_errorf(err, RWD_E_LIMIT, "more than %zu vocabulary entries", t->lim.max_vocab);
	}
	const char *key;
	size_t klen;
	json_t *val;
	json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
		json_int_t id = json_integer_value(val);
		if (!json_is_integer(val) || id < 0 || id > (1 << 24)) {
			rwd_error_where(err, NULL, "model.vocab");
			return rwd_errorf(err, RWD_E_INVALID, "the id of a vocabulary token must be an integer in [0, 2^24]");
		}
		if ((rc = vocab_put(t, key, klen, (int32_t)id, err))) {
			rwd_error_where(err, NULL, "model.vocab");
			return rc;
		}
	}
	const json_t *v = json_object_get(model, "continuing_subword_prefix");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) >= sizeof(t->prefix)) {
			rwd_error_where(err, NULL, "model.continuing_subword_prefix");
			return rwd_errorf(err, RWD_E_INVALID, "must be a string of fewer than %zu bytes", sizeof(t->prefix));
		}
		t->prefix_len = json_string_length(v);
		memcpy(t->prefix, json_string_value(v), t->prefix_len + 1);
	}
	v = json_object_get(model, "max_input_chars_per_word");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 20)) {
			rwd_error_where(err, NULL, "model.max_input_chars_per_word");
			return rwd_errorf(err, RWD_E_INVALID, "must be an integer in [0, 2^20]");
		}
		t->max_chars = (size_t)json_integer_value(v);
	}
	const char *unk = "[UNK]";
	v = json_object_get(model, "unk_token");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			rwd_error_where(err, NULL, "model.unk_token");
			return rwd_errorf(err, RWD_E_INVALID, "must be a string");
		}
		unk = json_string_value(v);
	}

	const json_t *norm = json_object_get(root, "normalizer");
	t->clean_text = t->chinese = t->strip_accents = t->lowercase = false;
	if (norm && !json_is_null(norm)) {
		const char *nt = json_string_value(json_object_get(norm, "type"));
		if (!nt || strcmp(nt, "BertNormalizer") != 0) {
			rwd_error_where(err, NULL, "normalizer.type");
			return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertNormalizer is supported");
		}
		if ((rc = jbool(norm, "clean_text", true, &t->clean_text, err, "normalizer.clean_text")) ||
			(rc = jbool(norm, "handle_chinese_chars", true, &t->chinese, err, "normalizer.handle_chinese_chars")) ||
			(rc = jbool(norm, "lowercase", true, &t->lowercase, err, "normalizer.lowercase")) ||
			(rc = jbool(norm, "strip_accents", t->lowercase, &t->strip_accents, err, "normalizer.strip_accents")))
			return rc;
	}
	const json_t *pre = json_object_get(root, "pre_tokenizer");
	const char *pt = json_string_value(json_object_get(pre, "type"));
	if (!pt || strcmp(pt, "BertPreTokenizer") != 0) {
		rwd_error_where(err, NULL, "pre_tokenizer.type");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertPreTokenizer is supported");
	}

	const json_t *added = json_object_get(root, "added_tokens");
	if (added && !json_is_null(added)) {
		if (!json_is_array(added)) {
			rwd_error_where(err, NULL, "added_tokens");
			return rwd_errorf(err, RWD_E_INVALID, "added_tokens must be an array");
		}
		if (json_array_size(added) > t->lim.max_added_tokens) {
			rwd_error_where(err, NULL, "added_tokens");
			return rwd_errorf(err, RWD_E_LIMIT, "more than %zu added tokens", t->lim.max_added_tokens);
		}
		size_t i;
		json_t *a;
		json_array_foreach(added, i, a) {
			char where[64];
			snprintf(where, sizeof(where), "added_tokens[%zu]", i);
			const json_t *c = json_object_get(a, "content");
			const json_t *id = json_object_get(a, "id");
			if (!json_is_string(c) || !json_is_integer(id) || json_integer_value(id) < 0 ||
				json_integer_value(id) > (1 << 24)) {
				rwd_error_where(err, NULL, where);
				return rwd_errorf(err, RWD_E_INVALID, "an added token needs a string content and an id in [0, 2^24]");
			}
			static const char *const flags[] = { "normalized", "lstrip", "rstrip", "single_word" };
			for (size_t f = 0; f < 4; f++) {
				if (json_is_true(json_object_get(a, flags[f]))) {
					rwd_error_where(err, NULL, where);
					return rwd_errorf(err, RWD_E_UNSUPPORTED, "added tokens with %s are not supported", flags[f]);
				}
			}
			if ((rc = special_put(t, json_string_value(c), json_string_length(c),
					(int32_t)json_integer_value(id), err))) {
				rwd_error_where(err, NULL, where);
				return rc;
			}
		}
	}
	const json_t *pp = json_object_get(root, "post_processor");
	if (pp && !json_is_null(pp)) {
		const char *ty = json_string_value(json_object_get(pp, "type"));
		if (ty && strcmp(ty, "BertProcessing") == 0) {
			if ((rc = pair_id(json_object_get(pp, "cls"), &t->cls, err, "post_processor.cls")) ||
				(rc = pair_id(json_object_get(pp, "sep"), &t->sep, err, "post_processor.sep")))
				return rc;
		} else if (ty && strcmp(ty, "TemplateProcessing") == 0) {
			if ((rc = template_ids(t, pp, err)))
				return rc;
		} else {
			rwd_error_where(err, NULL, "post_processor.type");
			return rwd_errorf(err, RWD_E_UNSUPPORTED, "only BertProcessing and TemplateProcessing are supported");
		}
		if (t->cls > t->max_id)
			t->max_id = t->cls;
		if (t->sep > t->max_id)
			t->max_id = t->sep;
	}
	const json_t *pad = json_object_get(json_object_get(root, "padding"), "pad_id");
	if (json_is_integer(pad) && json_integer_value(pad) >= 0 && json_integer_value(pad) <= (1 << 24))
		t->pad = (int32_t)json_integer_value(pad);
	return finish(t, unk, err);
}

int rwd_wordpiece_load_json_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err)
{
	*out = NULL;
	int rc;
	json_t *root = NULL;
	rwd_wordpiece *t = wp_new(params);
	if (!t)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (len > t->lim.max_file_bytes) {
		rc = rwd_errorf(err, RWD_E_LIMIT, "%zu bytes exceed the limit of %zu", len, t->lim.max_file_bytes);
		goto fail;
	}
	json_error_t je;
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		rc = rwd_errorf(err, RWD_E_FORMAT, "%s", je.text);
		rwd_error_at(err, je.line, je.column, je.position);
		goto fail;
	}
	if (!json_is_object(root)) {
		rc = rwd_errorf(err, RWD_E_INVALID, "a tokenizer.json must be an object");
		goto fail;
	}
	if ((rc = load_json_obj(t, root, err)))
		goto fail;
	json_decref(root);
	*out = t;
	return 0;
fail:
	rwd_error_where(err, name, NULL);
	json_decref(root);
	rwd_wordpiece_free(t);
	return rc;
}

int rwd_wordpiece_load_json(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	rwd_wordpiece_params p = params ? *params : rwd_wordpiece_default_params();
	char *buf;
	size_t len;
	*out = NULL;
	int rc = read_file(path, p.max_file_bytes, &buf, &len, err);
	if (rc)
		return rc;
	rc = rwd_wordpiece_load_json_bytes(buf, len, path, &p, out, err);
	free(buf);
	return rc;
}

int rwd_wordpiece_load_dir(const char *dir, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err)
{
	char path[4096];
	struct stat st;
	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/tokenizer.json", dir) >= sizeof(path))
		return rwd_errorf(err, RWD_E_INVALID, "path too long");
	if (stat(path, &st) == 0)
		return rwd_wordpiece_load_json(path, params, out, err);
	snprintf(path, sizeof(path), "%s/vocab.txt", dir);
	if (stat(path, &st) == 0)
		return rwd_wordpiece_load_vocab(path, params, out, err);
	rwd_error_where(err, dir, NULL);
	return rwd_errorf(err, RWD_E_NOTFOUND, "no tokenizer.json or vocab.txt");
}

int rwd_wordpiece_add_special(rwd_wordpiece *t, const char *content, int32_t *id, rwd_error *err)
{
	int32_t i = rwd_wordpiece_token_to_id(t, content);
	if (i < 0) {
		if (t->max_id >= (1 << 24))
			return rwd_errorf(err, RWD_E_LIMIT, "no id left");
		i = t->max_id + 1;
	}
	int rc = special_put(t, content, strlen(content), i, err);
	if (rc)
		return rc;
	if (id)
		*id = i;
	return 0;
}

int32_t rwd_wordpiece_token_to_id(const rwd_wordpiece *t, const char *token)
{
	size_t n = strlen(token);
	for (size_t i = 0; i < t->n_sp; i++)
		if (t->sp[i].len == n && memcmp(t->sp[i].s, token, n) == 0)
			return t->sp[i].id;
	return vocab_find(t, token, n);
}

size_t rwd_wordpiece_vocab_size(const rwd_wordpiece *t)
{
	return (size_t)(t->max_id + 1);
}

int32_t rwd_wordpiece_pad_id(const rwd_wordpiece *t)
{
	return t->pad;
}

/* ---------------------------------------------------------------- encoding */

struct idbuf {
	int32_t *v;
	size_t n, cap;
	rwd_arena *a;
};

static int push(struct idbuf *b, int32_t id)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		int32_t *nv = rwd_arena_alloc(b->a, cap * sizeof(*nv));
		if (!nv)
			return RWD_E_NOMEM;
		if (b->n)
			memcpy(nv, b->v, b->n * sizeof(*nv));
		b->v = nv;
		b->cap = cap;
	}
	b->v[b->n++] = id;
	return 0;
}

/* WordPiece on one word of nc code points cps[0..nc). */
static int word_piece(const rwd_wordpiece *t, const int32_t *cps, size_t nc, char *scratch, size_t *off,
	struct idbuf *b)
{
	if (nc > t->max_chars)
		return push(b, t->unk);
	/* scratch holds prefix + the word's UTF-8; off[k] = byte offset of char k */
	char *w = scratch + t->prefix_len;
	memcpy(scratch, t->prefix, t->prefix_len);
	size_t bl = 0;
	for (size_t k = 0; k < nc; k++) {
		off[k] = bl;
		bl += utf8_enc(cps[k], w + bl);
	}
	off[nc] = bl;
	size_t first = b->n;
	size_t start = 0;
	while (start < nc) {
		int32_t found = -1;
		size_t end = nc;
		for (; end > start; end--) {
			const char *s = w + off[start];
			size_t n = off[end] - off[start];
			if (start > 0) {
				/* "##" + piece: the prefix sits just before the piece */
				char *p = w + off[start] - t->prefix_len;
				char saved[32];
				memcpy(saved, p, t->prefix_len);
				memcpy(p, t->prefix, t->prefix_len);
				found = vocab_find(t, p, n + t->prefix_len);
				memcpy(p, saved, t->prefix_len);
			} else {
				found = vocab_find(t, s, n);
			}
			if (found >= 0)
				break;
		}
		if (found < 0) {
			b->n = first;
			return push(b, t->unk);
		}
		int rc = push(b, found);
		if (rc)
			return rc;
		start = end;
	}
	return 0;
}

/* Normalise and tokenise one piece of raw text between special tokens. */
static int encode_piece(const rwd_wordpiece *t, const char *s, size_t n, rwd_arena *a, struct idbuf *b)
{
	if (n == 0)
		return 0;
	/* 1. clean_text and chinese chars, to UTF-8 (<= 3 chars per input byte) */
	char *u = rwd_arena_alloc(a, 3 * n + 8);
	if (!u)
		return RWD_E_NOMEM;
	size_t ul = 0;
	for (size_t i = 0; i < n;) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
		i += (size_t)l;
		if (t->clean_text) {
			if (c == 0 || c == 0xFFFD || is_control(c))
				continue;
			if (is_white_space(c))
				c = ' ';
		}
		if (t->chinese && is_chinese(c)) {
			u[ul++] = ' ';
			ul += utf8_enc(c, u + ul);
			u[ul++] = ' ';
		} else {
			ul += utf8_enc(c, u + ul);
		}
	}
	/* 2. NFD + drop Mn (strip_accents), lowercase; into code points */
	int32_t *cp;
	size_t nc = 0;
	if (t->strip_accents) {
		size_t cap = ul + 16;
		for (;;) {
			cp = rwd_arena_alloc(a, cap * sizeof(*cp));
			if (!cp)
				return RWD_E_NOMEM;
			utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)ul,
				cp, (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE);
			if (r < 0)
				return RWD_E_INVALID;
			if ((size_t)r <= cap) {
				nc = (size_t)r;
				break;
			}
			cap = (size_t)r;
		}
		size_t k = 0;
		for (size_t i = 0; i < nc; i++)
			if (!is_mn(cp[i]))
				cp[k++] = cp[i];
		nc = k;
	} else {
		cp = rwd_arena_alloc(a, (ul + 1) * sizeof(*cp));
		if (!cp)
			return RWD_E_NOMEM;
		for (size_t i = 0; i < ul;) {
			utf8proc_int32_t c;
			i += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)u + i, (utf8proc_ssize_t)(ul - i), &c);
			cp[nc++] = c;
		}
	}
	if (t->lowercase) {
		size_t extra = 0;
		for (size_t i = 0; i < nc; i++)
			extra += cp[i] == 0x130;
		if (extra) {
			int32_t *w = rwd_arena_alloc(a, (nc + extra) * sizeof(*w));
			if (!w)
				return RWD_E_NOMEM;
			size_t k = 0;
			for (size_t i = 0; i < nc; i++) {
				if (cp[i] == 0x130) {
					/* the one unconditional multi-char lowercase (SpecialCasing) */
					w[k++] = 'i';
					w[k++] = 0x307;
				} else {
					w[k++] = cp[i];
				}
			}
			cp = w;
			nc = k;
		}
		for (size_t i = 0; i < nc; i++)
			cp[i] = cp[i] < 0x80 ? (cp[i] >= 'A' && cp[i] <= 'Z' ? cp[i] + 32 : cp[i]) : utf8proc_tolower(cp[i]);
	}
	/* 3. words: whitespace splits, punctuation isolated; 4. WordPiece */
	size_t longest = 0, run = 0;
	for (size_t i = 0; i < nc; i++) {
		run = is_white_space(cp[i]) || is_punct(cp[i]) ? 0 : run + 1;
		if (run > longest)
			longest = run;
	}
	if (longest > t->max_chars)
		longest = t->max_chars;
	if (longest == 0)
		longest = 1;
	char *scratch = rwd_arena_alloc(a, t->prefix_len + 4 * longest + 8);
	size_t *off = rwd_arena_alloc(a, (longest + 1) * sizeof(size_t));
	if (!scratch || !off)
		return RWD_E_NOMEM;
	size_t ws = 0;
	for (size_t i = 0; i <= nc; i++) {
		bool end = i == nc || is_white_space(cp[i]);
		bool pu = !end && is_punct(cp[i]);
		if (end || pu) {
			if (i > ws) {
				int rc = word_piece(t, cp + ws, i - ws, scratch, off, b);
				if (rc)
					return rc;
			}
			if (pu) {
				int rc = word_piece(t, cp + i, 1, scratch, off, b);
				if (rc)
					return rc;
			}
			ws = i + 1;
		}
	}
	return 0;
}

int rwd_wordpiece_encode(const rwd_wordpiece *t, const char *text, size_t len,
	const rwd_wordpiece_encode_params *p, rwd_arena *arena, rwd_wordpiece_ids *out, rwd_error *err)
{
	rwd_wordpiece_encode_params dp = rwd_wordpiece_encode_default_params();
	if (!p)
		p = &dp;
	memset(out, 0, sizeof(*out));
	if (!utf8_valid(text, len))
		return rwd_errorf(err, RWD_E_INVALID, "text is not valid UTF-8");
	bool specials = p->add_special_tokens && t->cls >= 0 && t->sep >= 0;
	size_t n_spec = specials ? 2 : 0;
	if (p->max_length && p->max_length < n_spec)
		return rwd_errorf(err, RWD_E_INVALID, "max_length %zu is below the %zu special tokens", p->max_length, n_spec);
	if (p->pad_to_max_length && (!p->max_length || t->pad < 0))
		return rwd_errorf(err, RWD_E_INVALID, "padding needs max_length and a [PAD] token");
	struct idbuf b = { .a = arena };
	int rc = 0;
	if (specials && (rc = push(&b, t->cls)))
		goto fail;
	size_t seg = 0;
	for (size_t i = 0; i < len;) {
		/* leftmost-longest special token at i */
		size_t best = 0;
		int32_t bid = -1;
		for (size_t k = 0; k < t->n_sp; k++) {
			const struct special *sp = &t->sp[k];
			if (sp->len > best && sp->len <= len - i && sp->s[0] == text[i] && memcmp(sp->s, text + i, sp->len) == 0) {
				best = sp->len;
				bid = sp->id;
			}
		}
		if (!best) {
			i++;
			continue;
		}
		if ((rc = encode_piece(t, text + seg, i - seg, arena, &b)) || (rc = push(&b, bid)))
			goto fail;
		i += best;
		seg = i;
	}
	if ((rc = encode_piece(t, text + seg, len - seg, arena, &b)))
		goto fail;
	if (specials && (rc = push(&b, t->sep)))
		goto fail;
	out->n_full = b.n;
	if (p->max_length && b.n > p->max_length) {
		if (specials)
			b.v[p->max_length - 1] = t->sep;
		b.n = p->max_length;
	}
	out->n = b.n;
	if (p->pad_to_max_length)
		while (b.n < p->max_length)
			if ((rc = push(&b, t->pad)))
				goto fail;
	out->ids = b.v;
	out->n_total = b.n;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	if (rc == RWD_E_NOMEM)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"tokenizer arena exhausted");
	return rwd_errorf(err, rc, "encoding failed");
}
